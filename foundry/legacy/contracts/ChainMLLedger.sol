// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {NodeRegistry} from "./ledger/NodeRegistry.sol";
import {VersionHistory} from "./ledger/VersionHistory.sol";
import {IChainMLLedger} from "./interfaces/IChainMLLedger.sol";

/// @title chainml ledger: registry, versions, rounds, signed commitments and reputation
/// @notice One round is active at a time. It opens on the current version, accepts EIP-712
/// signed commitments until its deadline (or until an aggregator closes the commit phase after
/// `minCommitments`), then waits for `ChainMLVoting` to finalize a voted aggregate as the next
/// version, or is closed without one.
///
/// Commitments come in three ways, all verified on chain:
///  - direct: the node sends `commit` itself;
///  - relayed: the node's gateway sends `commitRelayed` with many signed commitments;
///  - batched: a gateway posts a Merkle root (`postBatch`) with the leaves on IPFS; anyone can
///    prove inclusion (`proveLeaf`) and challenge a bad leaf (`challengeLeaf`) in a window.
/// @dev Gas: a commitment never writes a fresh slot. Its data goes into an event; double
/// commits and nonce replay are caught by the node's single registry slot, which stores the
/// last round the node committed in and its next nonce. Nothing loops over registered nodes.
contract ChainMLLedger is NodeRegistry, VersionHistory, EIP712 {
    /// @notice EIP-712 type hash of {Commitment}.
    bytes32 public constant COMMITMENT_TYPEHASH = keccak256(
        "Commitment(uint256 round,address node,uint256 baseVersion,bytes32 updateDigest,"
        "uint64 updateCodec,uint32 numSamples,uint64 lossBefore,uint64 lossAfter,uint64 nonce)"
    );

    /// @notice Reputation changes applied by the ledger.
    struct ReputationParams {
        int64 initial;
        int64 inclusionReward;
        int64 exclusionPenalty;
        int64 proposerPenalty;
        int64 gatewayPenalty;
    }

    /// @dev Slot 0 holds everything a commitment reads or writes.
    struct RoundRecord {
        uint32 baseVersion;
        uint40 commitDeadline;
        uint32 minCommitments;
        uint32 commitCount;
        RoundStatus status;
        uint16 quorumBps;
        uint40 challengeEnd;
        uint32 challengeWindow;
        // slot 1
        uint32 voteCommitPeriod;
        uint32 revealPeriod;
        uint32 producedVersion;
        uint32 batchCount;
        // slots 2 and 3, written once at finalization
        bytes32 includedRoot;
        bytes32 excludedRoot;
    }

    /// @notice A round as returned by `round()`; `status` is the effective one (an open round
    /// past its deadline reads as Aggregating).
    struct RoundView {
        RoundStatus status;
        uint256 baseVersion;
        uint256 commitDeadline;
        uint256 minCommitments;
        uint256 commitCount;
        uint256 quorumBps;
        uint256 challengeWindow;
        uint256 challengeEnd;
        uint256 voteCommitPeriod;
        uint256 revealPeriod;
        uint256 batchCount;
        uint256 producedVersion;
        bytes32 includedRoot;
        bytes32 excludedRoot;
    }

    struct BatchRecord {
        bytes32 root;
        bytes32 leavesDigest;
        address gateway;
        uint32 round;
        uint32 leafCount;
        uint32 voidedCount;
        uint64 leavesCodec;
        uint40 challengeDeadline;
    }

    /// @notice A batch as returned by `batch()`.
    struct BatchView {
        uint256 round;
        address gateway;
        bytes32 root;
        Cid leaves;
        uint256 leafCount;
        uint256 voidedCount;
        uint256 challengeDeadline;
    }

    int64 public immutable inclusionReward;
    int64 public immutable exclusionPenalty;
    int64 public immutable proposerPenalty;
    int64 public immutable gatewayPenalty;

    uint256 private _currentRound;
    uint256 private _batchCount;
    mapping(uint256 round => RoundRecord) private _rounds;
    mapping(uint256 batchId => BatchRecord) private _batches;
    mapping(uint256 batchId => mapping(bytes32 leaf => bool)) private _voided;

    /// @param admin Receives DEFAULT_ADMIN_ROLE (grants aggregator, validator and voting roles).
    /// @param genesisWeights CID of the initial meta-weights (version 0).
    /// @param genesisMetrics CID of the genesis evaluation metrics (may be zero).
    /// @param rep Reputation amounts; penalties are positive numbers that get subtracted.
    constructor(
        address admin,
        Cid memory genesisWeights,
        Cid memory genesisMetrics,
        ReputationParams memory rep
    )
        NodeRegistry(admin, rep.initial)
        VersionHistory(genesisWeights, genesisMetrics)
        EIP712("ChainML Ledger", "1")
    {
        inclusionReward = rep.inclusionReward;
        exclusionPenalty = rep.exclusionPenalty;
        proposerPenalty = rep.proposerPenalty;
        gatewayPenalty = rep.gatewayPenalty;
    }

    // ----------------------------------------------------------------------------------------
    // Round life cycle
    // ----------------------------------------------------------------------------------------

    /// @notice Opens the next round on `baseVersion`, which must be the current version.
    /// @return id The new round id (rounds count from 1).
    /// @dev Requirements: caller is aggregator or admin; no round is open or aggregating;
    /// `commitPeriod > 0`, `minCommitments > 0`, `0 < quorumBps <= 10000`.
    /// Emits {RoundOpened}.
    function openRound(uint256 baseVersion, RoundParams calldata p) external returns (uint256 id) {
        _onlyAggregatorOrAdmin();
        uint256 previous = _currentRound;
        if (previous != 0) {
            RoundStatus s = _rounds[previous].status;
            if (s == RoundStatus.Open || s == RoundStatus.Aggregating) {
                revert LedgerRoundStillActive(previous);
            }
        }
        id = previous + 1;
        uint256 current = currentVersion();
        if (baseVersion != current) revert LedgerStaleBaseVersion(id, baseVersion, current);
        if (
            p.commitPeriod == 0 || p.commitPeriod > type(uint32).max || p.minCommitments == 0
                || p.quorumBps == 0 || p.quorumBps > 10_000
        ) revert LedgerInvalidRoundParams();
        uint256 deadline = block.timestamp + p.commitPeriod;
        _currentRound = id;
        RoundRecord storage rd = _rounds[id];
        rd.baseVersion = uint32(baseVersion);
        rd.commitDeadline = uint40(deadline);
        rd.minCommitments = p.minCommitments;
        rd.status = RoundStatus.Open;
        rd.quorumBps = p.quorumBps;
        rd.challengeWindow = p.challengeWindow;
        rd.voteCommitPeriod = p.voteCommitPeriod;
        rd.revealPeriod = p.revealPeriod;
        emit RoundOpened(id, baseVersion, deadline, p);
    }

    /// @notice Ends the commit phase early once the round has enough commitments, so a local
    /// swarm need not wait for the wall-clock deadline.
    /// @dev Requirements: caller is aggregator or admin; round open and before its deadline;
    /// `commitCount >= minCommitments`. Emits {CommitPhaseClosed}.
    function closeCommitPhase(uint256 roundId) external {
        _onlyAggregatorOrAdmin();
        RoundRecord storage rd = _openRound(roundId);
        if (rd.commitCount < rd.minCommitments) {
            revert LedgerNotEnoughCommitments(roundId, rd.commitCount, rd.minCommitments);
        }
        rd.status = RoundStatus.Aggregating;
        emit CommitPhaseClosed(roundId, rd.commitCount);
    }

    /// @notice Closes a round without producing a version.
    /// @dev Requirements: the commit phase is over (deadline passed or closed early), and
    /// either the caller is aggregator or admin, or the round missed `minCommitments` (then
    /// anyone may close it, so a stalled round never blocks the next one). Emits {RoundClosed}.
    function closeRound(uint256 roundId) external {
        RoundRecord storage rd = _existingRound(roundId);
        RoundStatus s = rd.status;
        if (s != RoundStatus.Open && s != RoundStatus.Aggregating) revert LedgerRoundClosed(roundId, s);
        bool phaseOver = s == RoundStatus.Aggregating || block.timestamp > rd.commitDeadline;
        bool privileged =
            hasRole(AGGREGATOR_ROLE, msg.sender) || hasRole(DEFAULT_ADMIN_ROLE, msg.sender);
        if (!phaseOver || !(privileged || rd.commitCount < rd.minCommitments)) {
            revert LedgerCloseNotAllowed(roundId, msg.sender);
        }
        rd.status = RoundStatus.Closed;
        emit RoundClosed(roundId, rd.commitCount, msg.sender);
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Reverts with the reason the round is not ready: {LedgerCommitPhaseOpen},
    /// {LedgerNotEnoughCommitments}, {LedgerChallengePeriodActive} or {LedgerRoundNotAggregating}.
    function aggregationParams(uint256 roundId)
        external
        view
        returns (uint16 quorumBps, uint32 voteCommitPeriod, uint32 revealPeriod)
    {
        RoundRecord storage rd = _aggregatingRound(roundId);
        return (rd.quorumBps, rd.voteCommitPeriod, rd.revealPeriod);
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Requirements: caller holds VOTING_ROLE; the round is ready for aggregation.
    /// Emits {VersionAppended} and {RoundFinalized}.
    function finalizeRound(
        uint256 roundId,
        Cid calldata weights,
        Cid calldata metrics,
        bytes32 includedRoot,
        bytes32 excludedRoot
    ) external onlyRole(VOTING_ROLE) returns (uint256 newVersion) {
        RoundRecord storage rd = _aggregatingRound(roundId);
        newVersion = _appendVersion(weights, metrics, rd.baseVersion, roundId);
        rd.status = RoundStatus.Finalized;
        rd.producedVersion = uint32(newVersion);
        rd.includedRoot = includedRoot;
        rd.excludedRoot = excludedRoot;
        emit RoundFinalized(roundId, newVersion, includedRoot, excludedRoot);
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Requirements: caller holds VOTING_ROLE. Emits {ReputationChanged}.
    function penalizeProposer(uint256 roundId, address proposer) external onlyRole(VOTING_ROLE) {
        _changeReputation(proposer, roundId, -proposerPenalty, ReputationReason.ProposalRejected);
    }

    // ----------------------------------------------------------------------------------------
    // Commitments
    // ----------------------------------------------------------------------------------------

    /// @notice Direct mode: a node commits its own signed update.
    /// @param c The commitment; `c.node` must be the sender.
    /// @param r Signature r; @param vs Compact signature s with v folded in (EIP-2098).
    /// @dev Requirements: round open and before its deadline; base version is the round's;
    /// valid signature by `c.node`; node registered and active; fresh nonce; first commitment
    /// of the node in this round. Emits {CommitmentAccepted}.
    function commit(Commitment calldata c, bytes32 r, bytes32 vs) external {
        if (msg.sender != c.node) revert LedgerSenderNotNode(msg.sender, c.node);
        RoundRecord storage rd = _openRound(c.round);
        if (c.baseVersion != rd.baseVersion) {
            revert LedgerStaleBaseVersion(c.round, c.baseVersion, rd.baseVersion);
        }
        _verifySignature(_structHash(c), c.node, r, vs);
        _useNode(c.node, c.round, c.nonce, address(0));
        rd.commitCount += 1;
        emit CommitmentAccepted(
            c.round, c.node, c.updateDigest, c.updateCodec, c.numSamples, c.lossBefore, c.lossAfter
        );
    }

    /// @notice Relayed mode: a gateway submits many signed commitments in one transaction;
    /// every signature is verified. All or nothing: one bad item reverts the transaction with
    /// the item's error.
    /// @dev Requirements: as {commit} for each item, plus the sender is each node's gateway.
    /// Emits {CommitmentAccepted} per item and one {CommitmentsRelayed}.
    function commitRelayed(uint256 roundId, uint256 baseVersion, RelayedCommitment[] calldata items)
        external
    {
        RoundRecord storage rd = _openRound(roundId);
        if (baseVersion != rd.baseVersion) {
            revert LedgerStaleBaseVersion(roundId, baseVersion, rd.baseVersion);
        }
        uint256 n = items.length;
        for (uint256 i = 0; i < n; ++i) {
            RelayedCommitment calldata it = items[i];
            bytes32 structHash = keccak256(
                abi.encode(
                    COMMITMENT_TYPEHASH, roundId, it.node, baseVersion, it.updateDigest,
                    it.updateCodec, it.numSamples, it.lossBefore, it.lossAfter, it.nonce
                )
            );
            _verifySignature(structHash, it.node, it.r, it.vs);
            _useNode(it.node, roundId, it.nonce, msg.sender);
            emit CommitmentAccepted(
                roundId, it.node, it.updateDigest, it.updateCodec, it.numSamples, it.lossBefore,
                it.lossAfter
            );
        }
        rd.commitCount += uint32(n);
        emit CommitmentsRelayed(roundId, msg.sender, n);
    }

    /// @notice Batched mode: a gateway posts the Merkle root of `leafCount` signed
    /// commitments; the leaves are on IPFS at `leaves`. The leaves count as commitments unless
    /// voided by a challenge before `block.timestamp + challengeWindow`.
    /// @return batchId The new batch id (batches count from 1).
    /// @dev Leaf = keccak256(bytes.concat(keccak256(abi.encode(structHash, r, vs)))), sorted
    /// pair hashing (OpenZeppelin MerkleProof). Requirements: sender is the gateway of at
    /// least one node; round open and before its deadline; non-empty batch.
    /// Emits {BatchPosted}.
    function postBatch(uint256 roundId, bytes32 root, uint32 leafCount, Cid calldata leaves)
        external
        returns (uint256 batchId)
    {
        if (!_isGateway(msg.sender)) revert LedgerNotGateway(msg.sender);
        RoundRecord storage rd = _openRound(roundId);
        if (leafCount == 0 || root == bytes32(0)) revert LedgerEmptyBatch();
        batchId = ++_batchCount;
        uint256 deadline = block.timestamp + rd.challengeWindow;
        _batches[batchId] = BatchRecord({
            root: root,
            leavesDigest: leaves.digest,
            gateway: msg.sender,
            round: uint32(roundId),
            leafCount: leafCount,
            voidedCount: 0,
            leavesCodec: leaves.codec,
            challengeDeadline: uint40(deadline)
        });
        rd.commitCount += leafCount;
        if (deadline > rd.challengeEnd) rd.challengeEnd = uint40(deadline);
        rd.batchCount += 1;
        emit BatchPosted(
            batchId, roundId, msg.sender, root, leafCount, leaves.digest, leaves.codec, deadline
        );
    }

    /// @notice Proves that a signed commitment is a live (non-voided) leaf of a batch.
    /// @return leaf The leaf hash.
    /// @dev Reverts with {LedgerInvalidMerkleProof} for a wrong leaf or proof and
    /// {LedgerLeafAlreadyVoided} for a voided one.
    function proveLeaf(
        uint256 batchId,
        Commitment calldata c,
        bytes32 r,
        bytes32 vs,
        bytes32[] calldata proof
    ) external view returns (bytes32 leaf) {
        BatchRecord storage b = _batch(batchId);
        leaf = _batchLeaf(_structHash(c), r, vs);
        if (!MerkleProof.verifyCalldata(proof, b.root, leaf)) {
            revert LedgerInvalidMerkleProof(b.root, leaf);
        }
        if (_voided[batchId][leaf]) revert LedgerLeafAlreadyVoided(batchId, leaf);
    }

    /// @notice Challenges a batch leaf. If the leaf is invalid (bad signature, wrong round,
    /// stale base, node not registered/active or not behind this gateway, or the node also
    /// committed directly in the round) it is voided and the gateway loses reputation.
    /// @dev Requirements: within the batch's challenge window; valid inclusion proof; leaf not
    /// already voided; leaf actually invalid. Emits {LeafVoided} and {ReputationChanged}.
    function challengeLeaf(
        uint256 batchId,
        Commitment calldata c,
        bytes32 r,
        bytes32 vs,
        bytes32[] calldata proof
    ) external {
        BatchRecord storage b = _batch(batchId);
        // The window is [posted, posted + challengeWindow): a zero window allows no challenge
        // and lets the round proceed at once.
        if (block.timestamp >= b.challengeDeadline) {
            revert LedgerChallengeWindowClosed(batchId, b.challengeDeadline);
        }
        bytes32 structHash = _structHash(c);
        bytes32 leaf = _batchLeaf(structHash, r, vs);
        if (!MerkleProof.verifyCalldata(proof, b.root, leaf)) {
            revert LedgerInvalidMerkleProof(b.root, leaf);
        }
        if (_voided[batchId][leaf]) revert LedgerLeafAlreadyVoided(batchId, leaf);
        FaultReason reason = _leafFault(b, c, structHash, r, vs);
        if (reason == FaultReason.None) revert LedgerLeafValid(batchId, leaf);

        _voided[batchId][leaf] = true;
        b.voidedCount += 1;
        // Cannot underflow: the batch added leafCount to commitCount and each leaf is voided
        // at most once.
        unchecked {
            _rounds[b.round].commitCount -= 1;
        }
        emit LeafVoided(batchId, leaf, c.node, reason, msg.sender);
        _changeReputation(b.gateway, b.round, -gatewayPenalty, ReputationReason.GatewayFault);
    }

    // ----------------------------------------------------------------------------------------
    // Reputation
    // ----------------------------------------------------------------------------------------

    /// @notice Settles reputation for a finalized round in caller-chosen batches: up for nodes
    /// in the voted included list, down for nodes in the voted excluded list. Each node at
    /// most once per round, and rounds in order (a node settled for round r cannot be settled
    /// for an earlier round).
    /// @param included For each node, true to prove it against the included root, false for
    /// the excluded root. Leaves are keccak256(bytes.concat(keccak256(abi.encode(node)))).
    /// @dev The loop is bounded by the caller's input, never by the registry size.
    /// Emits {ReputationChanged} per node.
    function settleReputation(
        uint256 roundId,
        address[] calldata nodes,
        bool[] calldata included,
        bytes32[][] calldata proofs
    ) external {
        RoundRecord storage rd = _existingRound(roundId);
        if (rd.status != RoundStatus.Finalized) revert LedgerRoundNotFinalized(roundId);
        uint256 n = nodes.length;
        if (included.length != n) revert LedgerLengthMismatch(n, included.length);
        if (proofs.length != n) revert LedgerLengthMismatch(n, proofs.length);
        for (uint256 i = 0; i < n; ++i) {
            _settleOne(roundId, nodes[i], included[i] ? rd.includedRoot : rd.excludedRoot,
                included[i], proofs[i]);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Id of the latest round (0 before the first one opens).
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @notice A round's state and parameters.
    /// @dev Requirements: the round exists, else {LedgerRoundUnknown}.
    function round(uint256 roundId) external view returns (RoundView memory v) {
        RoundRecord storage rd = _existingRound(roundId);
        v = RoundView({
            status: _effectiveStatus(rd),
            baseVersion: rd.baseVersion,
            commitDeadline: rd.commitDeadline,
            minCommitments: rd.minCommitments,
            commitCount: rd.commitCount,
            quorumBps: rd.quorumBps,
            challengeWindow: rd.challengeWindow,
            challengeEnd: rd.challengeEnd,
            voteCommitPeriod: rd.voteCommitPeriod,
            revealPeriod: rd.revealPeriod,
            batchCount: rd.batchCount,
            producedVersion: rd.producedVersion,
            includedRoot: rd.includedRoot,
            excludedRoot: rd.excludedRoot
        });
    }

    /// @notice Whether `account` committed directly or relayed in `roundId` (batch leaves are
    /// tracked per batch, see `BatchPosted`).
    function hasCommitted(uint256 roundId, address account) external view returns (bool) {
        return roundId != 0 && _nodes[account].lastCommitRound == roundId;
    }

    /// @notice Number of batches posted so far.
    function batchCount() external view returns (uint256) {
        return _batchCount;
    }

    /// @notice A batch's state.
    /// @dev Requirements: the batch exists, else {LedgerBatchUnknown}.
    function batch(uint256 batchId) external view returns (BatchView memory) {
        BatchRecord storage b = _batch(batchId);
        return BatchView({
            round: b.round,
            gateway: b.gateway,
            root: b.root,
            leaves: Cid(b.leavesDigest, b.leavesCodec),
            leafCount: b.leafCount,
            voidedCount: b.voidedCount,
            challengeDeadline: b.challengeDeadline
        });
    }

    /// @notice Whether a batch leaf was voided by a challenge.
    function isLeafVoided(uint256 batchId, bytes32 leaf) external view returns (bool) {
        return _voided[batchId][leaf];
    }

    /// @notice The EIP-712 digest a node signs for `c` (for off-chain cross-checks).
    function commitmentDigest(Commitment calldata c) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(c));
    }

    /// @notice The batch leaf hash of a signed commitment (for off-chain cross-checks).
    function batchLeaf(Commitment calldata c, bytes32 r, bytes32 vs) external pure returns (bytes32) {
        return _batchLeaf(_structHash(c), r, vs);
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _onlyAggregatorOrAdmin() private view {
        if (!hasRole(AGGREGATOR_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert LedgerUnauthorized(msg.sender);
        }
    }

    function _existingRound(uint256 roundId) private view returns (RoundRecord storage rd) {
        if (roundId == 0 || roundId > _currentRound) revert LedgerRoundUnknown(roundId);
        rd = _rounds[roundId];
    }

    /// @dev The round, if it accepts commitments now.
    function _openRound(uint256 roundId) private view returns (RoundRecord storage rd) {
        rd = _existingRound(roundId);
        if (rd.status != RoundStatus.Open) revert LedgerRoundClosed(roundId, rd.status);
        if (block.timestamp > rd.commitDeadline) {
            revert LedgerCommitDeadlinePassed(roundId, rd.commitDeadline);
        }
    }

    /// @dev The round, if an aggregate may be proposed or finalized for it now.
    function _aggregatingRound(uint256 roundId) private view returns (RoundRecord storage rd) {
        rd = _existingRound(roundId);
        RoundStatus s = rd.status;
        if (s == RoundStatus.Open) {
            if (block.timestamp <= rd.commitDeadline) {
                revert LedgerCommitPhaseOpen(roundId, rd.commitDeadline);
            }
        } else if (s != RoundStatus.Aggregating) {
            revert LedgerRoundNotAggregating(roundId, s);
        }
        if (rd.commitCount < rd.minCommitments) {
            revert LedgerNotEnoughCommitments(roundId, rd.commitCount, rd.minCommitments);
        }
        if (block.timestamp < rd.challengeEnd) {
            revert LedgerChallengePeriodActive(roundId, rd.challengeEnd);
        }
    }

    function _effectiveStatus(RoundRecord storage rd) private view returns (RoundStatus) {
        if (rd.status == RoundStatus.Open && block.timestamp > rd.commitDeadline) {
            return RoundStatus.Aggregating;
        }
        return rd.status;
    }

    function _batch(uint256 batchId) private view returns (BatchRecord storage b) {
        b = _batches[batchId];
        if (b.root == bytes32(0)) revert LedgerBatchUnknown(batchId);
    }

    function _structHash(Commitment calldata c) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                COMMITMENT_TYPEHASH, c.round, c.node, c.baseVersion, c.updateDigest, c.updateCodec,
                c.numSamples, c.lossBefore, c.lossAfter, c.nonce
            )
        );
    }

    function _batchLeaf(bytes32 structHash, bytes32 r, bytes32 vs) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(structHash, r, vs))));
    }

    function _verifySignature(bytes32 structHash, address signer, bytes32 r, bytes32 vs)
        private
        view
    {
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(_hashTypedDataV4(structHash), r, vs);
        if (err != ECDSA.RecoverError.NoError || recovered != signer) {
            revert LedgerInvalidSignature(signer, recovered);
        }
    }

    /// @dev Checks the node's registry slot and records the commitment in it: exactly one
    /// SLOAD and one SSTORE. Solidity's struct copy would load and store each packed member
    /// separately (about 800 gas more per commitment), hence the assembly on the raw word.
    /// Layout (see {NodeRecord}): gateway [0,160), lastCommitRound [160,192),
    /// nextNonce [192,248), flags [248,256).
    function _useNode(address who, uint256 roundId, uint64 nonce, address relayer) private {
        NodeRecord storage record = _nodes[who];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(record.slot)
        }
        uint256 flags = word >> 248;
        if (flags & _FLAG_REGISTERED == 0) revert LedgerNodeNotRegistered(who);
        if (flags & _FLAG_ACTIVE == 0) revert LedgerNodeInactive(who);
        if (relayer != address(0) && address(uint160(word)) != relayer) {
            revert LedgerGatewayNotAllowed(who, relayer);
        }
        uint256 nextNonce = (word >> 192) & type(uint56).max;
        if (nonce < nextNonce) revert LedgerNonceUsed(who, nonce, uint64(nextNonce));
        if ((word >> 160) & type(uint32).max == roundId) revert LedgerAlreadyCommitted(roundId, who);
        if (nonce >= type(uint56).max) revert LedgerNonceOutOfRange(nonce);
        // roundId < 2**32 (rounds are counted one by one) and nonce + 1 < 2**56 (checked above).
        word = (word & ((1 << 160) - 1)) | (roundId << 160) | ((uint256(nonce) + 1) << 192)
            | (flags << 248);
        assembly ("memory-safe") {
            sstore(record.slot, word)
        }
    }

    /// @dev One node of {settleReputation}; split out to keep the loop's stack shallow.
    function _settleOne(
        uint256 roundId,
        address who,
        bytes32 root,
        bool wasIncluded,
        bytes32[] calldata proof
    ) private {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(who))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert LedgerInvalidMerkleProof(root, leaf);
        ReputationRecord storage rep = _reputation[who];
        if (rep.lastSettledRound >= roundId) revert LedgerAlreadySettled(roundId, who);
        rep.lastSettledRound = uint32(roundId);
        if (wasIncluded) {
            _changeReputation(who, roundId, inclusionReward, ReputationReason.Included);
        } else {
            _changeReputation(who, roundId, -exclusionPenalty, ReputationReason.Excluded);
        }
    }

    function _leafFault(
        BatchRecord storage b,
        Commitment calldata c,
        bytes32 structHash,
        bytes32 r,
        bytes32 vs
    ) private view returns (FaultReason) {
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(_hashTypedDataV4(structHash), r, vs);
        if (err != ECDSA.RecoverError.NoError || recovered != c.node) {
            return FaultReason.InvalidSignature;
        }
        if (c.round != b.round) return FaultReason.WrongRound;
        if (c.baseVersion != _rounds[b.round].baseVersion) return FaultReason.StaleBaseVersion;
        NodeRecord memory n = _nodes[c.node];
        if (n.flags & _FLAG_ACTIVE == 0 || n.gateway != b.gateway) return FaultReason.NodeNotAllowed;
        if (n.lastCommitRound == c.round) return FaultReason.AlreadyCommitted;
        return FaultReason.None;
    }
}
