// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Shared value types of the chainml contracts
/// @notice Only CIDs and small metadata live on chain; weights, metrics and lists stay on IPFS.
interface IChainMLTypes {
    /// @notice A CIDv1 as stored on chain: its sha2-256 digest plus its multicodec
    /// (0x55 raw, 0x70 dag-pb). Version 1 and sha2-256 are implied, so the exact CID string,
    /// codec included, can be rebuilt off chain (`chainml.storage.cid.cid_from_onchain`).
    struct Cid {
        bytes32 digest;
        uint64 codec;
    }

    /// @notice What a node signs (EIP-712 type `Commitment`) to commit an update for a round.
    /// @dev Losses are unsigned fixed point with 9 decimals (1.0 == 1e9).
    struct Commitment {
        uint256 round;
        address node;
        uint256 baseVersion;
        bytes32 updateDigest;
        uint64 updateCodec;
        uint32 numSamples;
        uint64 lossBefore;
        uint64 lossAfter;
        uint64 nonce;
    }

    /// @notice One commitment inside a relayed batch; round and base version are shared by the
    /// batch. The signature is compact (EIP-2098: r, vs) to keep calldata small.
    struct RelayedCommitment {
        address node;
        bytes32 updateDigest;
        uint64 updateCodec;
        uint32 numSamples;
        uint64 lossBefore;
        uint64 lossAfter;
        uint64 nonce;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice The timing and quorum part of the security parameters, as snapshotted by a round
    /// when it opens (and emitted in `RoundOpened`). Periods are in seconds.
    struct RoundParams {
        uint64 commitPeriod;
        uint32 minCommitments;
        uint16 quorumBps;
        uint32 challengeWindow;
        uint32 voteCommitPeriod;
        uint32 revealPeriod;
    }

    /// @notice Security parameters, fixed at deployment and changed only by the admin through a
    /// timelock, always within the bounds the ledger enforces. Each round snapshots them when it
    /// opens, so a change never affects a running round, and the aggregator never chooses them.
    /// @dev `gatewayBond` is in wei; `challengerRewardBps` is the challenger's share of a slash;
    /// `minReputation` gates which nodes may commit (the same threshold validators apply).
    struct SecurityParams {
        uint64 commitPeriod;
        uint32 minCommitments;
        uint16 quorumBps;
        uint32 challengeWindow;
        uint32 voteCommitPeriod;
        uint32 revealPeriod;
        uint8 maxProposals;
        uint96 gatewayBond;
        uint16 challengerRewardBps;
        int64 minReputation;
    }

    /// @notice Life cycle of a round. `Aggregating` is also implied by an `Open` round whose
    /// commit deadline has passed (see `IChainMLLedger.roundPhase`).
    enum RoundStatus {
        None,
        Open,
        Aggregating,
        Finalized,
        Closed
    }

    /// @notice Why a batch leaf was voided by a challenge.
    enum FaultReason {
        None,
        InvalidSignature,
        WrongRound,
        StaleBaseVersion,
        NodeNotAllowed,
        AlreadyCommitted,
        ReputationTooLow
    }
}
