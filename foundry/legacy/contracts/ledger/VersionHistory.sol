// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IChainMLLedger} from "../interfaces/IChainMLLedger.sol";

/// @title Append-only history of global meta-weight versions
/// @notice Version 0 is the genesis set at deployment. The current version is always the last
/// one appended, i.e. the last finalized round's aggregate.
abstract contract VersionHistory is IChainMLLedger {
    /// @dev Three slots: the two digests, then codecs, lineage and time packed together.
    struct VersionRecord {
        bytes32 weightsDigest;
        bytes32 metricsDigest;
        uint64 weightsCodec;
        uint64 metricsCodec;
        uint32 parent;
        uint32 round;
        uint40 timestamp;
    }

    /// @notice A version as returned by `version()`.
    struct VersionView {
        Cid weights;
        Cid metrics;
        uint256 parent;
        uint256 round;
        uint256 timestamp;
    }

    VersionRecord[] private _versions;

    /// @dev The genesis version is its own parent and belongs to round 0.
    constructor(Cid memory genesisWeights, Cid memory genesisMetrics) {
        _appendVersion(genesisWeights, genesisMetrics, 0, 0);
    }

    /// @notice Id of the current (last finalized) version.
    function currentVersion() public view returns (uint256) {
        return _versions.length - 1;
    }

    /// @notice Number of versions, genesis included.
    function versionCount() external view returns (uint256) {
        return _versions.length;
    }

    /// @notice One version of the history.
    /// @dev Requirements: `id` exists, else {LedgerVersionUnknown}.
    function version(uint256 id) external view returns (VersionView memory) {
        if (id >= _versions.length) revert LedgerVersionUnknown(id);
        VersionRecord storage v = _versions[id];
        return VersionView({
            weights: Cid(v.weightsDigest, v.weightsCodec),
            metrics: Cid(v.metricsDigest, v.metricsCodec),
            parent: v.parent,
            round: v.round,
            timestamp: v.timestamp
        });
    }

    /// @dev Emits {VersionAppended}. Ids fit uint32 because one version needs one round.
    function _appendVersion(Cid memory weights, Cid memory metrics, uint256 parent, uint256 round)
        internal
        returns (uint256 id)
    {
        id = _versions.length;
        _versions.push(
            VersionRecord({
                weightsDigest: weights.digest,
                metricsDigest: metrics.digest,
                weightsCodec: weights.codec,
                metricsCodec: metrics.codec,
                parent: uint32(parent),
                round: uint32(round),
                timestamp: uint40(block.timestamp)
            })
        );
        emit VersionAppended(
            id, parent, round, weights.digest, weights.codec, metrics.digest, metrics.codec
        );
    }
}
