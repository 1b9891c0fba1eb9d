// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IChainMLTypes} from "./IChainMLTypes.sol";

/// @title Events, errors and cross-contract functions of the chainml ledger
/// @notice The ledger is the source of truth for who may contribute (node registry), which
/// global meta-weights are current (version history) and what each node committed in each
/// round (direct, relayed and batched commitments). Aggregation voting lives in
/// `ChainMLVoting`, which calls back into the ledger to finalize a round.
interface IChainMLLedger is IChainMLTypes {
    /// @notice Why a reputation score changed.
    enum ReputationReason {
        Included,
        Excluded,
        ProposalRejected,
        GatewayFault
    }

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @notice A node was registered with its hardware profile and optional gateway.
    event NodeRegistered(
        address indexed node, address indexed gateway, bytes32 profileDigest, uint64 profileCodec
    );
    /// @notice A node may no longer commit.
    event NodeDeactivated(address indexed node);
    /// @notice A deactivated node may commit again.
    event NodeReactivated(address indexed node);
    /// @notice The gateway allowed to relay for a node changed (zero: none).
    event NodeGatewayChanged(address indexed node, address indexed previous, address indexed gateway);
    /// @notice A meta-weight version was appended; it is now the current version.
    event VersionAppended(
        uint256 indexed version,
        uint256 indexed parent,
        uint256 indexed round,
        bytes32 weightsDigest,
        uint64 weightsCodec,
        bytes32 metricsDigest,
        uint64 metricsCodec
    );
    /// @notice A round opened on `baseVersion`; commitments are accepted until `commitDeadline`.
    event RoundOpened(
        uint256 indexed round, uint256 indexed baseVersion, uint256 commitDeadline, RoundParams params
    );
    /// @notice A commitment was accepted (direct or relayed); its signature was verified on chain.
    /// @dev The base version is the round's; validators rebuild every update from these events.
    /// The nonce is left out (it only guards replay; `nodeInfo().nextNonce` has the state) to
    /// keep a relayed commitment under 20,000 gas.
    event CommitmentAccepted(
        uint256 indexed round,
        address indexed node,
        bytes32 updateDigest,
        uint64 updateCodec,
        uint32 numSamples,
        uint64 lossBefore,
        uint64 lossAfter
    );
    /// @notice A gateway relayed `count` commitments in one transaction.
    event CommitmentsRelayed(uint256 indexed round, address indexed gateway, uint256 count);
    /// @notice A gateway posted the Merkle root of `leafCount` signed commitments; the leaves
    /// (commitment and signature each) are on IPFS at the `leaves` CID.
    event BatchPosted(
        uint256 indexed batchId,
        uint256 indexed round,
        address indexed gateway,
        bytes32 root,
        uint32 leafCount,
        bytes32 leavesDigest,
        uint64 leavesCodec,
        uint256 challengeDeadline
    );
    /// @notice A challenge proved a batch leaf invalid; it no longer counts.
    event LeafVoided(
        uint256 indexed batchId,
        bytes32 indexed leaf,
        address indexed node,
        FaultReason reason,
        address challenger
    );
    /// @notice The commit phase was closed early, after enough commitments.
    event CommitPhaseClosed(uint256 indexed round, uint256 commitCount);
    /// @notice A round ended without producing a version.
    event RoundClosed(uint256 indexed round, uint256 commitCount, address closedBy);
    /// @notice A round produced `version`; reputation can now be settled against the roots.
    event RoundFinalized(
        uint256 indexed round, uint256 indexed version, bytes32 includedRoot, bytes32 excludedRoot
    );
    /// @notice A reputation score changed.
    event ReputationChanged(
        address indexed account,
        uint256 indexed round,
        ReputationReason indexed reason,
        int64 delta,
        int64 score
    );

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @notice The caller lacks the role (or one of the roles) this action needs.
    error LedgerUnauthorized(address account);
    /// @notice A zero address was given where an account is required.
    error LedgerZeroAddress();
    /// @notice Parallel arrays differ in length.
    error LedgerLengthMismatch(uint256 expected, uint256 actual);
    /// @notice The node is already registered.
    error LedgerNodeAlreadyRegistered(address node);
    /// @notice The node is not registered.
    error LedgerNodeNotRegistered(address node);
    /// @notice The node is deactivated.
    error LedgerNodeInactive(address node);
    /// @notice The node is already active.
    error LedgerNodeAlreadyActive(address node);
    /// @notice A direct commitment must be sent by the node itself.
    error LedgerSenderNotNode(address sender, address node);
    /// @notice `gateway` may not relay for `node`.
    error LedgerGatewayNotAllowed(address node, address gateway);
    /// @notice `account` is not the gateway of any registered node.
    error LedgerNotGateway(address account);
    /// @notice The signature does not recover to the committing node.
    error LedgerInvalidSignature(address node, address recovered);
    /// @notice The nonce was already used (it must be at least `nextNonce`).
    error LedgerNonceUsed(address node, uint64 nonce, uint64 nextNonce);
    /// @notice The nonce does not fit the registry's 56-bit nonce field.
    error LedgerNonceOutOfRange(uint64 nonce);
    /// @notice The node already committed in this round.
    error LedgerAlreadyCommitted(uint256 round, address node);
    /// @notice No such round.
    error LedgerRoundUnknown(uint256 round);
    /// @notice The round no longer accepts commitments (or is already finalized or closed).
    error LedgerRoundClosed(uint256 round, RoundStatus status);
    /// @notice The round's commit deadline has passed.
    error LedgerCommitDeadlinePassed(uint256 round, uint256 deadline);
    /// @notice The commitment (or round) is based on a version that is not the expected one.
    error LedgerStaleBaseVersion(uint256 round, uint256 given, uint256 expected);
    /// @notice A new round cannot open while `round` is open or aggregating.
    error LedgerRoundStillActive(uint256 round);
    /// @notice Round parameters are out of range.
    error LedgerInvalidRoundParams();
    /// @notice The round has fewer (non-voided) commitments than it needs.
    error LedgerNotEnoughCommitments(uint256 round, uint256 count, uint256 required);
    /// @notice The round is still in its commit phase.
    error LedgerCommitPhaseOpen(uint256 round, uint256 deadline);
    /// @notice A batch of the round can still be challenged.
    error LedgerChallengePeriodActive(uint256 round, uint256 challengeEnd);
    /// @notice The round is not in its aggregation phase.
    error LedgerRoundNotAggregating(uint256 round, RoundStatus status);
    /// @notice The round has not been finalized.
    error LedgerRoundNotFinalized(uint256 round);
    /// @notice The round cannot be closed by this caller now.
    error LedgerCloseNotAllowed(uint256 round, address account);
    /// @notice No such version.
    error LedgerVersionUnknown(uint256 version);
    /// @notice No such batch.
    error LedgerBatchUnknown(uint256 batchId);
    /// @notice A batch must hold at least one leaf and a non-zero root.
    error LedgerEmptyBatch();
    /// @notice `leaf` is not in the tree with `root` (wrong leaf or wrong proof).
    error LedgerInvalidMerkleProof(bytes32 root, bytes32 leaf);
    /// @notice The batch's challenge window ended at `deadline`.
    error LedgerChallengeWindowClosed(uint256 batchId, uint256 deadline);
    /// @notice The leaf was already voided.
    error LedgerLeafAlreadyVoided(uint256 batchId, bytes32 leaf);
    /// @notice The challenged leaf is valid; nothing to void.
    error LedgerLeafValid(uint256 batchId, bytes32 leaf);
    /// @notice The node's reputation for this round was already settled.
    error LedgerAlreadySettled(uint256 round, address node);

    // ----------------------------------------------------------------------------------------
    // Functions the voting contract uses
    // ----------------------------------------------------------------------------------------

    /// @notice Number of accounts holding the validator role.
    function validatorCount() external view returns (uint256);

    /// @notice Reverts unless `round` is ready for aggregation proposals; returns its vote
    /// parameters.
    function aggregationParams(uint256 round)
        external
        view
        returns (uint16 quorumBps, uint32 voteCommitPeriod, uint32 revealPeriod);

    /// @notice Appends the voted version and records the included/excluded roots.
    function finalizeRound(
        uint256 round,
        Cid calldata weights,
        Cid calldata metrics,
        bytes32 includedRoot,
        bytes32 excludedRoot
    ) external returns (uint256 version);

    /// @notice Lowers the reputation of a proposer whose aggregate was rejected.
    function penalizeProposer(uint256 round, address proposer) external;
}
