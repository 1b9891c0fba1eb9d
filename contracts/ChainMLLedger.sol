// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {NodeRegistry} from "./ledger/NodeRegistry.sol";
import {VersionHistory} from "./ledger/VersionHistory.sol";
import {IChainMLLedger} from "./interfaces/IChainMLLedger.sol";
import {ChainMLParams} from "./ChainMLParams.sol";

/// @title chainml ledger: registry, versions, rounds, signed commitments and reputation
/// @notice One round is active at a time. It opens on the current version with the security
/// parameters in force (set at deployment, changed only through the admin's timelock, within
/// enforced bounds) and the validator set of that moment; it accepts EIP-712 signed
/// commitments until its deadline (or until an aggregator closes the commit phase after
/// `minCommitments`), then waits for `ChainMLVoting` to finalize a voted aggregate as the next
/// version, or is closed without one (never while a proposal is pending).
///
/// Commitments come in three ways, all verified on chain:
///  - direct: the node sends `commit` itself;
///  - relayed: the node's gateway sends `commitRelayed` with many signed commitments;
///  - batched: a bonded gateway posts a Merkle root (`postBatch`) with the leaves on IPFS;
///    anyone can challenge a bad leaf with its inclusion proof (`challengeLeaf`)
///    within the challenge window, slashing the gateway's bond for a reward.
/// Reputation: each finalized round records one Merkle root over every registered node's
/// reputation after it (the table is on IPFS; validators recompute it before voting), so
/// settling a round costs the same for any number of nodes. A node below the initial score
/// proves its score against the latest root when it needs to (`proveReputations`).
/// @dev Gas: a commitment never writes a fresh slot. Its data goes into an event; double
/// commits and nonce replay are caught by the node's single registry slot, which stores the
/// last round the node committed in and its next nonce. Nothing loops over registered nodes.
contract ChainMLLedger is NodeRegistry, VersionHistory, EIP712 {
    /// @notice EIP-712 type hash of {Commitment}.
    bytes32 public constant COMMITMENT_TYPEHASH = keccak256(
        "Commitment(uint256 round,address node,uint256 baseVersion,bytes32 updateDigest,"
        "uint64 updateCodec,uint32 numSamples,uint64 lossBefore,uint64 lossAfter,uint64 nonce)"
    );

    /// @notice Most leaves one batch may declare (a tree of depth 16).
    uint256 public constant MAX_BATCH_LEAVES = 65_536;

    /// @notice Reputation changes applied by the ledger.
    struct ReputationParams {
        int64 initial;
        int64 inclusionReward;
        int64 exclusionPenalty;
        int64 proposerPenalty;
        int64 gatewayPenalty;
    }

    /// @dev Slot 0 holds everything a commitment reads or writes; the rest is snapshotted at
    /// open, or written during aggregation and settlement.
    struct RoundRecord {
        // slot 0
        uint32 baseVersion;
        uint40 commitDeadline;
        uint32 minCommitments;
        uint32 commitCount;
        RoundStatus status;
        uint40 challengeEnd;
        int64 minReputation;
        bool proposalPending;
        // slot 1
        uint16 validatorCount;
        uint8 proposalCount;
        uint8 maxProposals;
        uint16 quorumBps;
        uint32 challengeWindow;
        uint32 voteCommitPeriod;
        uint32 revealPeriod;
        uint32 producedVersion;
        uint32 batchCount;
        uint32 settledCount;
        // slot 2
        uint32 includedCount;
        uint32 excludedCount;
        uint32 gatedCount;
        // slots 3 and 4, written once at finalization
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
        uint256 validatorCount;
        uint256 proposalCount;
        uint256 maxProposals;
        int256 minReputation;
        uint256 includedCount;
        uint256 excludedCount;
        uint256 settledCount;
        bool proposalPending;
        uint256 gatedCount;
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
        uint40 postedAt;
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

    /// @dev One slot per gateway: the leaves it claimed in its latest round (reset when a new
    /// round's batch is posted).
    struct ClaimRecord {
        uint32 round;
        uint32 leaves;
    }

    int64 public immutable inclusionReward;
    int64 public immutable exclusionPenalty;
    int64 public immutable proposerPenalty;
    int64 public immutable gatewayPenalty;

    /// @notice Security parameters (timelocked), gateway bonds and challenge rewards; created
    /// by this ledger, which alone may lock and slash bonds.
    ChainMLParams public immutable params;

    uint256 private _currentRound;
    uint256 private _lastFinalizedRound;
    uint256 private _batchCount;
    /// @dev Merkle root of every registered node's reputation after `_lastFinalizedRound`
    /// (zero before any): nodes prove their score against it when they need to.
    bytes32 private _reputationRoot;
    mapping(uint256 round => RoundRecord) private _rounds;
    mapping(uint256 batchId => BatchRecord) private _batches;
    mapping(uint256 batchId => mapping(bytes32 leaf => bool)) private _voided;
    mapping(address gateway => ClaimRecord) private _claims;

    /// @param admin Receives DEFAULT_ADMIN_ROLE (grants aggregator, validator and voting roles).
    /// @param genesisWeights CID of the initial meta-weights (version 0).
    /// @param genesisMetrics CID of the genesis evaluation metrics (may be zero).
    /// @param rep Reputation amounts; penalties are positive numbers that get subtracted.
    /// @param security The security parameters; reverts {ParamsOutOfBounds} if out of bounds.
    /// @dev Creates the {ChainMLParams} contract (its code is in this constructor only, so it
    /// does not count against the ledger's runtime size).
    constructor(
        address admin,
        Cid memory genesisWeights,
        Cid memory genesisMetrics,
        ReputationParams memory rep,
        SecurityParams memory security
    )
        NodeRegistry(admin, rep.initial)
        VersionHistory(genesisWeights, genesisMetrics)
        EIP712("ChainML Ledger", "1")
    {
        inclusionReward = rep.inclusionReward;
        exclusionPenalty = rep.exclusionPenalty;
        proposerPenalty = rep.proposerPenalty;
        gatewayPenalty = rep.gatewayPenalty;
        params = new ChainMLParams(security);
    }

    // ----------------------------------------------------------------------------------------
    // Round life cycle
    // ----------------------------------------------------------------------------------------

    /// @notice Opens the next round on `baseVersion`, which must be the current version, with
    /// the security parameters and the validator set in force now.
    /// @return id The new round id (rounds count from 1).
    /// @dev Requirements: caller is aggregator or admin; no round is open or aggregating; the
    /// last finalized round is settled: every node its reputation table put below the initial
    /// score has been proven (so the gate of this round is exactly the validators'); at least
    /// one validator. Emits {RoundOpened}.
    function openRound(uint256 baseVersion) external returns (uint256 id) {
        _onlyAggregatorOrAdmin();
        uint256 previous = _currentRound;
        if (previous != 0) {
            RoundStatus s = _rounds[previous].status;
            if (s == RoundStatus.Open || s == RoundStatus.Aggregating) {
                revert LedgerRoundStillActive(previous);
            }
        }
        uint256 last = _lastFinalizedRound;
        if (last != 0) {
            RoundRecord storage lr = _rounds[last];
            if (lr.settledCount < lr.gatedCount) {
                revert LedgerSettlementPending(last, lr.settledCount, lr.gatedCount);
            }
        }
        id = previous + 1;
        uint256 current = currentVersion();
        if (baseVersion != current) revert LedgerStaleBaseVersion(id, baseVersion, current);
        uint256 validators = validatorCount();
        if (validators == 0 || validators > type(uint16).max) {
            revert LedgerValidatorCountOutOfBounds(validators);
        }
        SecurityParams memory p = params.current();
        uint256 deadline = block.timestamp + p.commitPeriod;
        _currentRound = id;
        RoundRecord storage rd = _rounds[id];
        rd.baseVersion = uint32(baseVersion);
        rd.commitDeadline = uint40(deadline);
        rd.minCommitments = p.minCommitments;
        rd.status = RoundStatus.Open;
        rd.minReputation = p.minReputation;
        rd.validatorCount = uint16(validators);
        rd.maxProposals = p.maxProposals;
        rd.quorumBps = p.quorumBps;
        rd.challengeWindow = p.challengeWindow;
        rd.voteCommitPeriod = p.voteCommitPeriod;
        rd.revealPeriod = p.revealPeriod;
        emit RoundOpened(
            id,
            baseVersion,
            deadline,
            RoundParams(
                p.commitPeriod, p.minCommitments, p.quorumBps, p.challengeWindow,
                p.voteCommitPeriod, p.revealPeriod
            )
        );
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
    /// @dev Requirements: the commit phase is over (deadline passed or closed early); no
    /// proposal is pending (a proposal with quorum can always be finalized, never closed away);
    /// and either the caller is aggregator or admin, or the round missed `minCommitments` or
    /// used all its proposals (then anyone may close it, so a stalled round never blocks the
    /// next one). Emits {RoundClosed}.
    function closeRound(uint256 roundId) external {
        RoundRecord storage rd = _existingRound(roundId);
        RoundStatus s = rd.status;
        if (s != RoundStatus.Open && s != RoundStatus.Aggregating) revert LedgerRoundClosed(roundId, s);
        if (rd.proposalPending) revert LedgerProposalPending(roundId);
        bool phaseOver = s == RoundStatus.Aggregating || block.timestamp > rd.commitDeadline;
        bool privileged =
            hasRole(AGGREGATOR_ROLE, msg.sender) || hasRole(DEFAULT_ADMIN_ROLE, msg.sender);
        bool stalled = rd.commitCount < rd.minCommitments || rd.proposalCount >= rd.maxProposals;
        if (!phaseOver || !(privileged || stalled)) {
            revert LedgerCloseNotAllowed(roundId, msg.sender);
        }
        rd.status = RoundStatus.Closed;
        emit RoundClosed(roundId, rd.commitCount, msg.sender);
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Requirements: caller is the bound voting contract; the round is ready for
    /// aggregation, has no pending proposal and has proposals left; the proposal builds on the
    /// latest reputation root. Emits {ProposalOpened}.
    function openProposal(uint256 roundId, bytes32 parentReputationRoot)
        external
        onlyRole(VOTING_ROLE)
        returns (uint16 quorumBps, uint32 voteCommitPeriod, uint32 revealPeriod, uint256 validators)
    {
        RoundRecord storage rd = _aggregatingRound(roundId);
        if (rd.proposalPending) revert LedgerProposalPending(roundId);
        if (rd.proposalCount >= rd.maxProposals) {
            revert LedgerTooManyProposals(roundId, rd.maxProposals);
        }
        if (parentReputationRoot != _reputationRoot) {
            revert LedgerStaleReputationRoot(roundId, parentReputationRoot, _reputationRoot);
        }
        rd.proposalPending = true;
        uint8 count = rd.proposalCount + 1;
        rd.proposalCount = count;
        emit ProposalOpened(roundId, count);
        return (rd.quorumBps, rd.voteCommitPeriod, rd.revealPeriod, rd.validatorCount);
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Requirements: caller is the bound voting contract; the round is ready for
    /// aggregation; the voted aggregate includes at least `minCommitments` nodes (validators
    /// certified that count, so phantom batch leaves cannot stand in for real updates).
    /// The voted reputation root replaces the latest one: settlement is this one write, the
    /// same for any number of nodes (validators recomputed the table before voting).
    /// Emits {VersionAppended} and {RoundFinalized}.
    function finalizeRound(uint256 roundId, Outcome calldata o)
        external
        onlyRole(VOTING_ROLE)
        returns (uint256 newVersion)
    {
        RoundRecord storage rd = _aggregatingRound(roundId);
        if (o.includedCount < rd.minCommitments) {
            revert LedgerTooFewIncluded(roundId, o.includedCount, rd.minCommitments);
        }
        rd.status = RoundStatus.Finalized;
        rd.proposalPending = false;
        rd.includedRoot = o.includedRoot;
        rd.excludedRoot = o.excludedRoot;
        rd.includedCount = o.includedCount;
        rd.excludedCount = o.excludedCount;
        rd.gatedCount = o.gatedCount;
        _lastFinalizedRound = roundId;
        _reputationRoot = o.reputationRoot;
        newVersion = _appendVersion(o.weights, o.metrics, rd.baseVersion, roundId);
        rd.producedVersion = uint32(newVersion);
        emit RoundFinalized(
            roundId, newVersion, o.includedRoot, o.excludedRoot, o.reputationRoot, o.gatedCount
        );
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Requirements: caller is the bound voting contract. Emits {ReputationChanged}.
    function proposalRejected(uint256 roundId, address proposer) external onlyRole(VOTING_ROLE) {
        _rounds[roundId].proposalPending = false;
        _changeReputation(proposer, roundId, -proposerPenalty, ReputationReason.ProposalRejected);
    }

    /// @inheritdoc IChainMLLedger
    /// @dev Requirements: caller is the bound voting contract. Emits {ReputationChanged}.
    function penalizeValidator(uint256 roundId, address validator) external onlyRole(VOTING_ROLE) {
        _changeReputation(validator, roundId, -proposerPenalty, ReputationReason.VoteNotRevealed);
    }

    // ----------------------------------------------------------------------------------------
    // Commitments
    // ----------------------------------------------------------------------------------------

    /// @notice Direct mode: a node commits its own signed update.
    /// @param c The commitment; `c.node` must be the sender.
    /// @param r Signature r; @param vs Compact signature s with v folded in (EIP-2098).
    /// @dev Requirements: round open and before its deadline; base version is the round's;
    /// valid signature by `c.node`; node registered and active, with at least the round's
    /// minimum reputation; fresh nonce; first commitment of the node in this round.
    /// Emits {CommitmentAccepted}.
    function commit(Commitment calldata c, bytes32 r, bytes32 vs) external {
        if (msg.sender != c.node) revert LedgerSenderNotNode(msg.sender, c.node);
        RoundRecord storage rd = _openRound(c.round);
        if (c.baseVersion != rd.baseVersion) {
            revert LedgerStaleBaseVersion(c.round, c.baseVersion, rd.baseVersion);
        }
        _verifySignature(_structHash(c), c.node, r, vs);
        FaultReason f = _useNode(c.node, c.round, c.nonce, address(0), rd.minReputation);
        if (f != FaultReason.None) _revertFault(f, c.node, c.round, c.nonce, rd.minReputation);
        rd.commitCount += 1;
        emit CommitmentAccepted(
            c.round, c.node, c.updateDigest, c.updateCodec, c.numSamples, c.lossBefore, c.lossAfter
        );
    }

    /// @notice Relayed mode: a gateway submits many signed commitments in one transaction;
    /// every signature is verified. An item of a node that already committed, reused a nonce
    /// or lacks the reputation minimum is skipped (so one front-run commitment cannot revert
    /// the relay); an item the gateway should never have sent (bad signature, a node that is
    /// not registered, active and behind this gateway) reverts the whole transaction.
    /// @dev Requirements: as {commit} for each item, plus the sender is each node's gateway.
    /// Emits {CommitmentAccepted} or {CommitmentSkipped} per item and one {CommitmentsRelayed}.
    function commitRelayed(uint256 roundId, uint256 baseVersion, RelayedCommitment[] calldata items)
        external
    {
        RoundRecord storage rd = _openRound(roundId);
        if (baseVersion != rd.baseVersion) {
            revert LedgerStaleBaseVersion(roundId, baseVersion, rd.baseVersion);
        }
        int64 minRep = rd.minReputation;
        uint256 n = items.length;
        uint256 accepted = 0;
        for (uint256 i = 0; i < n; ++i) {
            RelayedCommitment calldata it = items[i];
            bytes32 structHash = keccak256(
                abi.encode(
                    COMMITMENT_TYPEHASH, roundId, it.node, baseVersion, it.updateDigest,
                    it.updateCodec, it.numSamples, it.lossBefore, it.lossAfter, it.nonce
                )
            );
            _verifySignature(structHash, it.node, it.r, it.vs);
            FaultReason f = _useNode(it.node, roundId, it.nonce, msg.sender, minRep);
            if (f == FaultReason.None) {
                ++accepted;
                emit CommitmentAccepted(
                    roundId, it.node, it.updateDigest, it.updateCodec, it.numSamples,
                    it.lossBefore, it.lossAfter
                );
            } else if (f == FaultReason.NodeNotAllowed || f == FaultReason.WrongRound) {
                _revertFault(f, it.node, roundId, it.nonce, minRep);
            } else {
                emit CommitmentSkipped(roundId, it.node, f);
            }
        }
        // accepted <= items.length, and a round cannot hold 2**32 commitments of distinct nodes
        // (each needs its own registry slot); the cast is checked by the addition below.
        rd.commitCount = uint32(uint256(rd.commitCount) + accepted);
        emit CommitmentsRelayed(roundId, msg.sender, accepted);
    }

    /// @notice Batched mode: a bonded gateway posts the Merkle root of `leafCount` signed
    /// commitments; the leaves are on IPFS at `leaves`. The leaves count as commitments unless
    /// voided by a challenge before `block.timestamp + challengeWindow`.
    /// @return batchId The new batch id (batches count from 1).
    /// @dev Leaf = keccak256(bytes.concat(keccak256(abi.encode(structHash, r, vs)))), sorted
    /// pair hashing (OpenZeppelin MerkleProof). Requirements: sender is the gateway of at
    /// least one node and holds the round's bond; round open and before its deadline;
    /// non-empty batch; the leaves this gateway claims in the round (this batch included)
    /// never exceed the nodes registered behind it, nor MAX_BATCH_LEAVES per batch.
    /// Emits {BatchPosted}.
    function postBatch(uint256 roundId, bytes32 root, uint32 leafCount, Cid calldata leaves)
        external
        returns (uint256 batchId)
    {
        if (!_isGateway(msg.sender)) revert LedgerNotGateway(msg.sender);
        RoundRecord storage rd = _openRound(roundId);
        if (leafCount == 0 || root == bytes32(0)) revert LedgerEmptyBatch();
        ClaimRecord storage claim = _claims[msg.sender];
        uint256 claimed = (claim.round == roundId ? uint256(claim.leaves) : 0) + leafCount;
        uint256 allowed = _gatewayNodeCount[msg.sender];
        if (allowed > MAX_BATCH_LEAVES) allowed = MAX_BATCH_LEAVES;
        if (claimed > allowed) revert LedgerTooManyLeaves(msg.sender, claimed, allowed);
        uint256 deadline = block.timestamp + rd.challengeWindow;
        claim.round = uint32(roundId);
        claim.leaves = uint32(claimed);
        batchId = ++_batchCount;
        _batches[batchId] = BatchRecord({
            root: root,
            leavesDigest: leaves.digest,
            gateway: msg.sender,
            round: uint32(roundId),
            leafCount: leafCount,
            voidedCount: 0,
            leavesCodec: leaves.codec,
            challengeDeadline: uint40(deadline),
            postedAt: uint40(block.timestamp)
        });
        rd.commitCount += leafCount;
        if (deadline > rd.challengeEnd) rd.challengeEnd = uint40(deadline);
        rd.batchCount += 1;
        emit BatchPosted(
            batchId, roundId, msg.sender, root, leafCount, leaves.digest, leaves.codec, deadline
        );
        // Reverts {LedgerBondTooLow} unless the gateway is bonded; locks the bond until the
        // challenge window closes. The params contract is this ledger's own (no reentrancy).
        params.lockBond(msg.sender, deadline);
    }

    /// @notice Challenges a batch leaf. If the leaf is invalid (bad signature, wrong round,
    /// stale base, node not registered/active or not behind this gateway, node below the
    /// reputation minimum, or the node also committed directly in the round) it is voided:
    /// it no longer counts anywhere. If the fault was the gateway's when it posted, the
    /// gateway loses reputation and part of its bond, and the challenger earns a reward.
    /// @dev Requirements: within the batch's challenge window; valid inclusion proof; leaf not
    /// already voided; leaf actually invalid. Emits {LeafVoided}, and for a gateway fault
    /// {ReputationChanged} and {GatewayBondSlashed}. Node reputation never moves here: it
    /// changes only through settled rounds.
    function challengeLeaf(
        uint256 batchId,
        Commitment calldata c,
        bytes32 r,
        bytes32 vs,
        bytes32[] calldata proof
    ) external {
        BatchRecord storage b = _batch(batchId);
        // The window is [posted, posted + challengeWindow).
        if (block.timestamp >= b.challengeDeadline) {
            revert LedgerChallengeWindowClosed(batchId, b.challengeDeadline);
        }
        bytes32 structHash = _structHash(c);
        bytes32 leaf = _batchLeaf(structHash, r, vs);
        if (!MerkleProof.verifyCalldata(proof, b.root, leaf)) {
            revert LedgerInvalidMerkleProof(b.root, leaf);
        }
        if (_voided[batchId][leaf]) revert LedgerLeafAlreadyVoided(batchId, leaf);
        (FaultReason reason, bool gatewayFault) = _leafFault(b, c, structHash, r, vs);
        if (reason == FaultReason.None) revert LedgerLeafValid(batchId, leaf);
        // A root can hold more distinct leaves than it declared; never void more than that.
        if (b.voidedCount >= b.leafCount) revert LedgerVoidOverflow(batchId, b.voidedCount, b.leafCount);

        _voided[batchId][leaf] = true;
        b.voidedCount += 1;
        RoundRecord storage rd = _rounds[b.round];
        // Checked: each voided leaf was among the leafCount this batch added.
        rd.commitCount -= 1;
        emit LeafVoided(batchId, leaf, c.node, reason, msg.sender);
        if (gatewayFault) {
            _changeReputation(b.gateway, b.round, -gatewayPenalty, ReputationReason.GatewayFault);
            params.slash(batchId, b.gateway, msg.sender);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Reputation
    // ----------------------------------------------------------------------------------------

    /// @notice Proves nodes' scores in the latest reputation table against its root and
    /// caches them on the ledger: a node below the initial score needs such a fresh proof to
    /// commit (direct or relayed) and for its batch leaf to be judged on reputation. Proving a
    /// node that fell below the initial score in the latest round settles it; the next round
    /// opens once all of them (the round's `gatedCount`) are settled. Anyone may prove; a
    /// node already proven against the latest root is skipped.
    /// @dev Leaf = keccak256(bytes.concat(keccak256(abi.encode(node, score)))); the root pairs
    /// the full table's tree with its below-initial sub-table's (chainml.swarm.settlement), so
    /// a node that must prove has a proof as short as that sub-table allows. The loop is
    /// bounded by the caller's input, never by the registry size. Reverts
    /// {LedgerInvalidMerkleProof} for a score or proof that is not in the latest table.
    /// Emits {ReputationProven} per node, and {RoundSettled} when the round's last gated node
    /// is settled.
    function proveReputations(
        address[] calldata nodes,
        int64[] calldata scores,
        bytes32[][] calldata proofs
    ) external {
        uint256 n = nodes.length;
        if (scores.length != n) revert LedgerLengthMismatch(n, scores.length);
        if (proofs.length != n) revert LedgerLengthMismatch(n, proofs.length);
        uint256 latest = _lastFinalizedRound;
        bytes32 root = _reputationRoot;
        uint256 settled = 0;
        for (uint256 i = 0; i < n; ++i) {
            if (_proveOne(latest, root, nodes[i], scores[i], proofs[i])) ++settled;
        }
        if (settled != 0) {
            RoundRecord storage rd = _rounds[latest];
            uint256 total = uint256(rd.settledCount) + settled;
            rd.settledCount = uint32(total);
            if (total == rd.gatedCount) emit RoundSettled(latest, total);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Id of the latest round (0 before the first one opens).
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @notice The latest reputation root and the latest finalized round (0 before any), whose
    /// table it is the root of.
    function reputationRoot() external view returns (bytes32 root, uint256 roundId) {
        return (_reputationRoot, _lastFinalizedRound);
    }

    /// @notice A round's state and parameters.
    /// @dev Requirements: the round exists, else {LedgerRoundUnknown}.
    function round(uint256 roundId) external view returns (RoundView memory v) {
        RoundRecord storage rd = _existingRound(roundId);
        v.status = _effectiveStatus(rd);
        v.baseVersion = rd.baseVersion;
        v.commitDeadline = rd.commitDeadline;
        v.minCommitments = rd.minCommitments;
        v.commitCount = rd.commitCount;
        v.quorumBps = rd.quorumBps;
        v.challengeWindow = rd.challengeWindow;
        v.challengeEnd = rd.challengeEnd;
        v.voteCommitPeriod = rd.voteCommitPeriod;
        v.revealPeriod = rd.revealPeriod;
        v.batchCount = rd.batchCount;
        v.producedVersion = rd.producedVersion;
        v.includedRoot = rd.includedRoot;
        v.excludedRoot = rd.excludedRoot;
        v.validatorCount = rd.validatorCount;
        v.proposalCount = rd.proposalCount;
        v.maxProposals = rd.maxProposals;
        v.minReputation = rd.minReputation;
        v.includedCount = rd.includedCount;
        v.excludedCount = rd.excludedCount;
        v.settledCount = rd.settledCount;
        v.proposalPending = rd.proposalPending;
        v.gatedCount = rd.gatedCount;
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

    /// @notice The EIP-712 digest a node signs for `c` (for off-chain cross-checks).
    function commitmentDigest(Commitment calldata c) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(c));
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _latestRound() internal view override returns (uint256) {
        return _currentRound;
    }

    function _latestFinalizedRound() internal view override returns (uint256) {
        return _lastFinalizedRound;
    }

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

    function _recover(bytes32 structHash, bytes32 r, bytes32 vs) private view returns (address) {
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(_hashTypedDataV4(structHash), r, vs);
        return err == ECDSA.RecoverError.NoError ? recovered : address(0);
    }

    function _verifySignature(bytes32 structHash, address signer, bytes32 r, bytes32 vs)
        private
        view
    {
        address recovered = _recover(structHash, r, vs);
        if (recovered != signer || signer == address(0)) {
            revert LedgerInvalidSignature(signer, recovered);
        }
    }

    /// @dev Reverts with the custom error of a commitment fault found by {_useNode}.
    function _revertFault(FaultReason f, address who, uint256 roundId, uint64 nonce, int64 minRep)
        private
        view
    {
        NodeRecord memory n = _nodes[who];
        if (f == FaultReason.NodeNotAllowed) {
            if (n.flags & _FLAG_REGISTERED == 0) revert LedgerNodeNotRegistered(who);
            if (n.flags & _FLAG_ACTIVE == 0) revert LedgerNodeInactive(who);
            revert LedgerGatewayNotAllowed(who, msg.sender);
        }
        if (f == FaultReason.WrongRound) revert LedgerNonceOutOfRange(nonce);
        if (f == FaultReason.ReputationTooLow) {
            ReputationRecord memory rep = _reputation[who];
            if (rep.provenRound != _lastFinalizedRound) {
                revert LedgerReputationNotProven(who, rep.provenRound, _lastFinalizedRound);
            }
            revert LedgerReputationTooLow(who, rep.provenScore, minRep);
        }
        if (nonce < n.nextNonce) revert LedgerNonceUsed(who, nonce, uint64(n.nextNonce));
        revert LedgerAlreadyCommitted(roundId, who);
    }

    /// @dev Checks the node's registry slot and, if the commitment is acceptable, records it
    /// there: one SLOAD and one SSTORE (plus one read of the reputation slot). Solidity's
    /// struct copy would load and store each packed member separately (about 800 gas more per
    /// commitment), hence the assembly on the raw word. Returns the fault instead of reverting
    /// so a relay can skip what a front-runner caused. Fault codes reused here: NodeNotAllowed
    /// (unregistered, inactive or wrong relayer), WrongRound (nonce out of range),
    /// AlreadyCommitted (also for a used nonce), ReputationTooLow (also for a node that must
    /// prove its reputation and has no proof against the latest root).
    /// Layout (see {NodeRecord}): gateway [0,160), lastCommitRound [160,192),
    /// nextNonce [192,248), flags [248,256).
    function _useNode(address who, uint256 roundId, uint64 nonce, address relayer, int64 minRep)
        private
        returns (FaultReason)
    {
        NodeRecord storage record = _nodes[who];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(record.slot)
        }
        uint256 flags = word >> 248;
        if (flags & _FLAG_REGISTERED == 0 || flags & _FLAG_ACTIVE == 0) {
            return FaultReason.NodeNotAllowed;
        }
        if (relayer != address(0) && address(uint160(word)) != relayer) {
            return FaultReason.NodeNotAllowed;
        }
        if (nonce >= type(uint56).max) return FaultReason.WrongRound;
        uint256 nextNonce = (word >> 192) & type(uint56).max;
        if (nonce < nextNonce || (word >> 160) & type(uint32).max == roundId) {
            return FaultReason.AlreadyCommitted;
        }
        // A node whose flag is clear scores at least the initial reputation in the latest table
        // (proven, or never below it), so it passes any minimum up to that score without a
        // storage read; any other node needs a fresh proof of a score at the minimum.
        if (flags & _FLAG_MUST_PROVE != 0 || minRep > initialReputation) {
            ReputationRecord storage rep = _reputation[who];
            if (rep.provenRound != _lastFinalizedRound || rep.provenScore < minRep) {
                return FaultReason.ReputationTooLow;
            }
        }
        // roundId < 2**32 (rounds are counted one by one) and nonce + 1 < 2**56 (checked above).
        word = (word & ((1 << 160) - 1)) | (roundId << 160) | ((uint256(nonce) + 1) << 192)
            | (flags << 248);
        assembly ("memory-safe") {
            sstore(record.slot, word)
        }
        return FaultReason.None;
    }

    /// @dev One node of {proveReputations}: verifies (node, score) against `root` (the table
    /// of round `latest`) and caches it. Returns whether it settled the node, i.e. turned its
    /// must-prove flag on (a node that fell below the initial score in round `latest`).
    function _proveOne(
        uint256 latest,
        bytes32 root,
        address who,
        int64 score,
        bytes32[] calldata proof
    ) private returns (bool settled) {
        NodeRecord storage node = _nodes[who];
        uint8 flags = node.flags;
        if (flags & _FLAG_REGISTERED == 0) revert LedgerNodeNotRegistered(who);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(who, score))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert LedgerInvalidMerkleProof(root, leaf);
        ReputationRecord storage rep = _reputation[who];
        if (rep.provenRound == latest) return false;
        rep.provenRound = uint32(latest);
        rep.provenScore = score;
        bool below = score < initialReputation;
        settled = below && flags & _FLAG_MUST_PROVE == 0;
        if (below != (flags & _FLAG_MUST_PROVE != 0)) {
            node.flags = below ? flags | _FLAG_MUST_PROVE : flags & ~_FLAG_MUST_PROVE;
        }
        emit ReputationProven(who, latest, score, below);
    }

    /// @dev Why a leaf does not count, and whether the fault was the gateway's when it posted
    /// (a node that later deactivated, changed gateway or committed directly is not).
    function _leafFault(
        BatchRecord storage b,
        Commitment calldata c,
        bytes32 structHash,
        bytes32 r,
        bytes32 vs
    ) private view returns (FaultReason, bool gatewayFault) {
        address recovered = _recover(structHash, r, vs);
        if (recovered == address(0) || recovered != c.node) {
            return (FaultReason.InvalidSignature, true);
        }
        if (c.round != b.round) return (FaultReason.WrongRound, true);
        RoundRecord storage rd = _rounds[b.round];
        if (c.baseVersion != rd.baseVersion) return (FaultReason.StaleBaseVersion, true);
        NodeRecord memory n = _nodes[c.node];
        if (n.flags & _FLAG_ACTIVE == 0 || n.gateway != b.gateway) {
            return (FaultReason.NodeNotAllowed, _nodeChangedAt[c.node] <= b.postedAt);
        }
        if (n.flags & _FLAG_MUST_PROVE != 0 || rd.minReputation > initialReputation) {
            // Judged on the node's proven score in the latest table (fixed while the round
            // runs): a challenger proves a low score first (`proveReputations`).
            ReputationRecord memory rep = _reputation[c.node];
            if (rep.provenRound == _lastFinalizedRound && rep.provenScore < rd.minReputation) {
                return (FaultReason.ReputationTooLow, true);
            }
        }
        if (n.lastCommitRound == c.round) return (FaultReason.AlreadyCommitted, false);
        return (FaultReason.None, false);
    }
}
