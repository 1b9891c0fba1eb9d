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
        GatewayFault,
        NodeFault,
        VoteNotRevealed
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
    /// @notice A round produced `version` and the reputation root of every registered node
    /// after it (`gatedCount` nodes fell below the initial score and must be proven before the
    /// next round opens).
    event RoundFinalized(
        uint256 indexed round,
        uint256 indexed version,
        bytes32 includedRoot,
        bytes32 excludedRoot,
        bytes32 reputationRoot,
        uint256 gatedCount
    );
    /// @notice A relayed commitment was skipped (not counted, nothing reverted) because the node
    /// had already committed, reused a nonce or is below the reputation minimum; `reason` is
    /// the would-be {FaultReason}. One front-run commitment no longer reverts a whole relay.
    event CommitmentSkipped(uint256 indexed round, address indexed node, FaultReason reason);
    /// @notice The admin approved (or withdrew approval of) `gateway` for node self-assignment.
    event GatewayApproved(address indexed gateway, bool approved);
    /// @notice `gateway` consented (or withdrew consent) to relay for `node`.
    event GatewayConsentChanged(address indexed gateway, address indexed node, bool consent);
    /// @notice A validator role holder's eligibility changed: it votes in rounds
    /// `[sinceRound, untilRound]` (untilRound 0: open-ended).
    event ValidatorTermChanged(address indexed validator, uint256 sinceRound, uint256 untilRound);
    /// @notice A proposal for `round` was opened on the ledger (the `count`-th of the round).
    event ProposalOpened(uint256 indexed round, uint256 count);
    /// @notice Every node that fell below the initial score in `round` has been proven.
    event RoundSettled(uint256 indexed round, uint256 nodes);
    /// @notice `node`'s score in the reputation table of finalized round `round` was proven
    /// against that round's root; `mustProve`: the node is below the initial score, so it
    /// needs a fresh proof to commit.
    event ReputationProven(address indexed node, uint256 indexed round, int64 score, bool mustProve);
    /// @notice An MCU artifact (e.g. an int8 TFLite Micro export) was derived from `version`.
    /// @dev Provenance only: anyone may record; `digest`/`codec` form the artifact's CID and
    /// `target` names the device target (e.g. keccak256 of its name).
    event ArtifactRecorded(
        uint256 indexed version, bytes32 digest, uint64 codec, bytes32 target, address indexed recorder
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
    /// @notice The node's reputation must be proven against the latest root (`latest`) to
    /// commit; its last proof was against round `proven`'s.
    error LedgerReputationNotProven(address node, uint256 proven, uint256 latest);
    /// @notice A proposal must build on the ledger's latest reputation root.
    error LedgerStaleReputationRoot(uint256 round, bytes32 given, bytes32 latest);
    /// @notice A round needs between 1 and 65,535 validators.
    error LedgerValidatorCountOutOfBounds(uint256 validators);
    /// @notice The voting contract is bound once (the first VOTING_ROLE grant); the role can
    /// never be granted again or revoked, so no one (the admin included) can finalize by it.
    error LedgerVotingRoleLocked(address account);
    /// @notice A gateway may be named only with its consent or the admin's approval.
    error LedgerGatewayNotConsenting(address node, address gateway);
    /// @notice The gateway claims more leaves this round than it has nodes (or the cap).
    error LedgerTooManyLeaves(address gateway, uint256 claimed, uint256 allowed);
    /// @notice The node's reputation is below the round's minimum.
    error LedgerReputationTooLow(address node, int64 score, int64 minimum);
    /// @notice A proposal of the round is pending; it must be finalized or rejected first.
    error LedgerProposalPending(uint256 round);
    /// @notice The round used all its proposals.
    error LedgerTooManyProposals(uint256 round, uint256 max);
    /// @notice The finalized aggregate includes fewer nodes than the round's minimum.
    error LedgerTooFewIncluded(uint256 round, uint256 included, uint256 required);
    /// @notice The previous finalized round is not fully settled yet (`settled` of `total`
    /// newly gated nodes proven).
    error LedgerSettlementPending(uint256 round, uint256 settled, uint256 total);
    /// @notice A challenge would void more leaves than the batch declared (cannot happen).
    error LedgerVoidOverflow(uint256 batchId, uint256 voided, uint256 leafCount);

    // ----------------------------------------------------------------------------------------
    // Functions the voting contract uses
    // ----------------------------------------------------------------------------------------

    /// @notice Number of accounts holding the validator role.
    function validatorCount() external view returns (uint256);

    /// @notice Whether `account` belongs to `round`'s snapshotted validator set (it held the
    /// validator role when the round opened).
    function isValidatorFor(uint256 round, address account) external view returns (bool);

    /// @notice Voting only: reverts unless `round` is ready for a (new) proposal, has
    /// proposals left and `parentReputationRoot` is the latest reputation root; marks one
    /// pending and returns the round's snapshotted vote parameters.
    function openProposal(uint256 round, bytes32 parentReputationRoot)
        external
        returns (uint16 quorumBps, uint32 voteCommitPeriod, uint32 revealPeriod, uint256 validators);

    /// @notice What a voted proposal finalizes (see `IChainMLVoting.ProposalInput`).
    struct Outcome {
        Cid weights;
        Cid metrics;
        bytes32 includedRoot;
        bytes32 excludedRoot;
        uint32 includedCount;
        uint32 excludedCount;
        bytes32 reputationRoot;
        uint32 gatedCount;
    }

    /// @notice Voting only: appends the voted version and records the node-list roots and the
    /// new reputation root.
    function finalizeRound(uint256 round, Outcome calldata outcome)
        external
        returns (uint256 version);

    /// @notice Voting only: the pending proposal was rejected; its proposer loses reputation.
    function proposalRejected(uint256 round, address proposer) external;

    /// @notice Voting only: a validator committed a vote and did not reveal it in time.
    function penalizeValidator(uint256 round, address validator) external;
}
