// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IChainMLLedger} from "./interfaces/IChainMLLedger.sol";
import {IChainMLVoting} from "./interfaces/IChainMLVoting.sol";

/// @title chainml aggregation voting with commit-reveal
/// @notice Flow per proposal: an aggregator `propose`s an aggregate for a round that is ready
/// for aggregation; validators `commitVote` the hash of (proposal, validator, approve, salt);
/// the commit phase ends when every validator has committed or at its deadline; validators
/// then `revealVote`. Anyone may `finalize` once yes votes reach the quorum (the ledger appends
/// the new version) or `reject` once quorum has become impossible or the reveal deadline passed
/// (the proposer loses reputation and, while the round has proposals left, a replacement may
/// be proposed). A validator that committed and did not reveal by the deadline can be
/// penalized by anyone (`forfeitVote`).
/// @dev Weights: one validator, one vote. The validator set is the round's snapshot kept by
/// the ledger (the validator-role holders when the round opened; `isValidatorFor`); quorum is
/// `ceil(quorumBps * validatorCount / 10000)` yes votes (at least one), where the ledger
/// bounds quorumBps to a strict majority. No role can finalize without that quorum: the ledger
/// accepts finalization only from this contract, and only this contract's `finalize` calls it.
contract ChainMLVoting is IChainMLVoting {
    bytes32 private constant _AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    /// @dev Stored in place of a revealed vote's commitment: one slot per vote, never two.
    bytes32 private constant _REVEALED_NO = bytes32(uint256(1));
    bytes32 private constant _REVEALED_YES = bytes32(uint256(2));
    /// @dev Stored in place of a commitment never revealed, once penalized.
    bytes32 private constant _FORFEITED = bytes32(uint256(3));

    struct ProposalRecord {
        // slot 0: tallies, touched by every vote
        address proposer;
        ProposalStatus status;
        uint16 validatorCount;
        uint16 committedVotes;
        uint16 yes;
        uint16 no;
        // slot 1
        uint32 round;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint16 required;
        uint16 ruleId;
        uint32 includedCount;
        uint32 excludedCount;
        // slot 2
        uint64 aggregateCodec;
        uint64 metricsCodec;
        uint32 gatedCount;
        // slots 3-7; the full-list and reputation-table CIDs are only in {ProposalSubmitted}
        bytes32 aggregateDigest;
        bytes32 metricsDigest;
        bytes32 includedRoot;
        bytes32 excludedRoot;
        bytes32 reputationRoot;
    }

    /// @notice A proposal as returned by `proposal()`.
    struct ProposalView {
        ProposalStatus status;
        address proposer;
        uint256 round;
        uint256 validatorCount;
        uint256 required;
        uint256 committedVotes;
        uint256 yes;
        uint256 no;
        uint256 commitDeadline;
        uint256 revealDeadline;
        bool commitPhaseOver;
        Cid aggregate;
        Cid metrics;
        bytes32 includedRoot;
        bytes32 excludedRoot;
        uint256 includedCount;
        uint256 excludedCount;
        uint256 ruleId;
        bytes32 reputationRoot;
        uint256 gatedCount;
    }

    /// @notice The ledger this contract finalizes rounds on.
    IChainMLLedger public immutable ledger;
    /// @dev The same contract seen through its AccessControl interface (roles live there).
    IAccessControl private immutable _roles;

    uint256 private _proposalCount;
    mapping(uint256 proposalId => ProposalRecord) private _proposals;
    mapping(uint256 round => uint256 proposalId) private _pendingProposal;
    /// @dev The vote commitment, replaced by _REVEALED_NO/_REVEALED_YES once revealed.
    mapping(uint256 proposalId => mapping(address validator => bytes32)) private _votes;

    /// @param ledger_ The ledger; it must grant this contract VOTING_ROLE.
    constructor(IChainMLLedger ledger_) {
        ledger = ledger_;
        _roles = IAccessControl(address(ledger_));
    }

    /// @notice Proposes an aggregate for `p.round`.
    /// @return proposalId The new proposal id (proposals count from 1).
    /// @dev Requirements: caller is an aggregator; no pending proposal for the round;
    /// non-empty aggregate CID; the round is ready for aggregation and has proposals left, and
    /// the proposal builds on the ledger's latest reputation root (else the ledger's reason,
    /// e.g. {LedgerCommitPhaseOpen}, {LedgerTooManyProposals}, {LedgerStaleReputationRoot}).
    /// The vote parameters and the validator count are the round's snapshot.
    /// Emits {ProposalSubmitted}.
    function propose(ProposalInput calldata p) external returns (uint256 proposalId) {
        if (!_roles.hasRole(_AGGREGATOR_ROLE, msg.sender)) revert VotingNotAggregator(msg.sender);
        uint256 pending = _pendingProposal[p.round];
        if (pending != 0) revert VotingProposalPending(p.round, pending);
        if (p.aggregate.digest == bytes32(0)) revert VotingEmptyAggregate();
        (uint16 quorumBps, uint32 voteCommitPeriod, uint32 revealPeriod, uint256 validators) =
            ledger.openProposal(p.round, p.parentReputationRoot);
        if (validators == 0) revert VotingNoValidators();
        uint256 required = (quorumBps * validators + 9_999) / 10_000;
        if (required == 0) required = 1;

        proposalId = ++_proposalCount;
        uint256 commitDeadline = block.timestamp + voteCommitPeriod;
        uint256 revealDeadline = commitDeadline + revealPeriod;
        ProposalRecord storage r = _proposals[proposalId];
        r.proposer = msg.sender;
        r.status = ProposalStatus.Pending;
        r.validatorCount = uint16(validators);
        r.round = uint32(p.round);
        r.commitDeadline = uint40(commitDeadline);
        r.revealDeadline = uint40(revealDeadline);
        r.required = uint16(required);
        r.ruleId = p.ruleId;
        r.includedCount = p.includedCount;
        r.excludedCount = p.excludedCount;
        r.aggregateCodec = p.aggregate.codec;
        r.metricsCodec = p.metrics.codec;
        r.aggregateDigest = p.aggregate.digest;
        r.metricsDigest = p.metrics.digest;
        r.includedRoot = p.includedRoot;
        r.excludedRoot = p.excludedRoot;
        r.reputationRoot = p.reputationRoot;
        r.gatedCount = p.gatedCount;
        _pendingProposal[p.round] = proposalId;
        emit ProposalSubmitted(
            proposalId, p.round, msg.sender, p, validators, commitDeadline, revealDeadline
        );
    }

    /// @notice Commits a hidden vote: `commitment = voteCommitment(id, validator, approve, salt)`.
    /// @dev Requirements: caller is in the round's validator snapshot; proposal pending; the
    /// validator has not voted; the commit phase is running. Emits {VoteCommitted}.
    function commitVote(uint256 proposalId, bytes32 commitment) external {
        ProposalRecord storage r = _pending(proposalId);
        if (!ledger.isValidatorFor(r.round, msg.sender)) revert VotingNotValidator(msg.sender);
        if (_votes[proposalId][msg.sender] != bytes32(0)) {
            revert VotingAlreadyVoted(proposalId, msg.sender);
        }
        if (_commitPhaseOver(r)) revert VotingCommitPhaseOver(proposalId, r.commitDeadline);
        if (uint256(commitment) <= uint256(_FORFEITED)) revert VotingInvalidCommitment(commitment);
        _votes[proposalId][msg.sender] = commitment;
        r.committedVotes += 1;
        emit VoteCommitted(proposalId, msg.sender, commitment);
    }

    /// @notice Reveals a committed vote. A vote may still be revealed after the proposal was
    /// decided (until the reveal deadline), so an early finalization never makes an honest
    /// validator forfeit.
    /// @dev Requirements: caller has a committed, unrevealed vote; the commit phase is over and
    /// the reveal deadline has not passed; `approve` and `salt` match the commitment.
    /// Emits {VoteRevealed}.
    function revealVote(uint256 proposalId, bool approve, bytes32 salt) external {
        ProposalRecord storage r = _proposals[proposalId];
        if (r.status == ProposalStatus.None) revert VotingProposalUnknown(proposalId);
        bytes32 stored = _votes[proposalId][msg.sender];
        if (stored == bytes32(0)) revert VotingNoCommittedVote(proposalId, msg.sender);
        if (stored == _REVEALED_NO || stored == _REVEALED_YES || stored == _FORFEITED) {
            revert VotingAlreadyRevealed(proposalId, msg.sender);
        }
        if (!_commitPhaseOver(r)) revert VotingCommitPhaseActive(proposalId, r.commitDeadline);
        if (block.timestamp > r.revealDeadline) {
            revert VotingRevealPhaseOver(proposalId, r.revealDeadline);
        }
        if (voteCommitment(proposalId, msg.sender, approve, salt) != stored) {
            revert VotingRevealMismatch(proposalId, msg.sender);
        }
        _votes[proposalId][msg.sender] = approve ? _REVEALED_YES : _REVEALED_NO;
        if (approve) r.yes += 1;
        else r.no += 1;
        emit VoteRevealed(proposalId, msg.sender, approve);
    }

    /// @notice Finalizes an accepted proposal: the ledger appends its aggregate as the new
    /// current version. Callable by anyone as soon as the yes votes reach the quorum.
    /// @return newVersion The id of the new version.
    /// @dev Requirements: proposal pending; yes votes reach the quorum; the ledger round is
    /// still aggregating and the aggregate includes the round's minimum of nodes.
    /// Emits {ProposalAccepted} (and the ledger's {RoundFinalized}).
    function finalize(uint256 proposalId) external returns (uint256 newVersion) {
        ProposalRecord storage r = _pending(proposalId);
        if (r.yes < r.required) revert VotingQuorumNotReached(proposalId, r.yes, r.required);
        r.status = ProposalStatus.Accepted;
        delete _pendingProposal[r.round];
        newVersion = ledger.finalizeRound(
            r.round,
            IChainMLLedger.Outcome({
                weights: Cid(r.aggregateDigest, r.aggregateCodec),
                metrics: Cid(r.metricsDigest, r.metricsCodec),
                includedRoot: r.includedRoot,
                excludedRoot: r.excludedRoot,
                includedCount: r.includedCount,
                excludedCount: r.excludedCount,
                reputationRoot: r.reputationRoot,
                gatedCount: r.gatedCount
            })
        );
        emit ProposalAccepted(proposalId, r.round, newVersion, r.yes, r.no);
    }

    /// @notice Rejects a proposal that can no longer pass: the no votes make quorum impossible,
    /// or the reveal deadline passed without quorum. The proposer loses reputation and the
    /// round may get a replacement proposal. Callable by anyone.
    /// @dev Requirements: proposal pending and unable to pass. Emits {ProposalRejected}.
    function reject(uint256 proposalId) external {
        ProposalRecord storage r = _pending(proposalId);
        bool impossible = r.no > r.validatorCount - r.required;
        bool expired = block.timestamp > r.revealDeadline && r.yes < r.required;
        if (!impossible && !expired) revert VotingRejectionNotAllowed(proposalId, r.yes, r.no);
        r.status = ProposalStatus.Rejected;
        delete _pendingProposal[r.round];
        emit ProposalRejected(proposalId, r.round, r.proposer, r.yes, r.no);
        ledger.proposalRejected(r.round, r.proposer);
    }

    /// @notice Penalizes a validator that committed a vote and did not reveal it by the
    /// deadline (so withholding a reveal to stall or to peek costs the validator). Anyone may
    /// call it.
    /// @dev Requirements: the reveal deadline has passed; the validator's vote is committed and
    /// unrevealed. Emits {VoteForfeited} (and the ledger's {ReputationChanged}).
    function forfeitVote(uint256 proposalId, address validator) external {
        ProposalRecord storage r = _proposals[proposalId];
        if (r.status == ProposalStatus.None) revert VotingProposalUnknown(proposalId);
        if (block.timestamp <= r.revealDeadline) {
            revert VotingRevealPhaseActive(proposalId, r.revealDeadline);
        }
        bytes32 stored = _votes[proposalId][validator];
        if (uint256(stored) <= uint256(_FORFEITED)) revert VotingNothingToForfeit(proposalId, validator);
        _votes[proposalId][validator] = _FORFEITED;
        emit VoteForfeited(proposalId, validator);
        ledger.penalizeValidator(r.round, validator);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice The hash a validator commits for a vote.
    function voteCommitment(uint256 proposalId, address validator, bool approve, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(proposalId, validator, approve, salt));
    }

    /// @notice Number of proposals so far.
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    /// @notice The pending proposal of `round`, or 0.
    function pendingProposal(uint256 round) external view returns (uint256) {
        return _pendingProposal[round];
    }

    /// @notice A proposal's state (the full proposal, list CIDs included, is in its
    /// {ProposalSubmitted} event).
    /// @dev Requirements: the proposal exists, else {VotingProposalUnknown}.
    function proposal(uint256 proposalId) external view returns (ProposalView memory v) {
        ProposalRecord storage r = _proposals[proposalId];
        if (r.status == ProposalStatus.None) revert VotingProposalUnknown(proposalId);
        v = ProposalView({
            status: r.status,
            proposer: r.proposer,
            round: r.round,
            validatorCount: r.validatorCount,
            required: r.required,
            committedVotes: r.committedVotes,
            yes: r.yes,
            no: r.no,
            commitDeadline: r.commitDeadline,
            revealDeadline: r.revealDeadline,
            commitPhaseOver: _commitPhaseOver(r),
            aggregate: Cid(r.aggregateDigest, r.aggregateCodec),
            metrics: Cid(r.metricsDigest, r.metricsCodec),
            includedRoot: r.includedRoot,
            excludedRoot: r.excludedRoot,
            includedCount: r.includedCount,
            excludedCount: r.excludedCount,
            ruleId: r.ruleId,
            reputationRoot: r.reputationRoot,
            gatedCount: r.gatedCount
        });
    }

    /// @notice One validator's vote on one proposal; `approve` is meaningful once revealed.
    function voteOf(uint256 proposalId, address validator)
        external
        view
        returns (VoteState state, bool approve, bytes32 commitment)
    {
        bytes32 stored = _votes[proposalId][validator];
        if (stored == bytes32(0)) return (VoteState.None, false, stored);
        if (stored == _REVEALED_NO) return (VoteState.Revealed, false, stored);
        if (stored == _REVEALED_YES) return (VoteState.Revealed, true, stored);
        if (stored == _FORFEITED) return (VoteState.Forfeited, false, stored);
        return (VoteState.Committed, false, stored);
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _pending(uint256 proposalId) private view returns (ProposalRecord storage r) {
        r = _proposals[proposalId];
        if (r.status == ProposalStatus.None) revert VotingProposalUnknown(proposalId);
        if (r.status != ProposalStatus.Pending) revert VotingProposalNotPending(proposalId, r.status);
    }

    /// @dev The commit phase ends early once every validator of the snapshot has committed,
    /// so a local swarm never waits for the wall clock.
    function _commitPhaseOver(ProposalRecord storage r) private view returns (bool) {
        return r.committedVotes >= r.validatorCount || block.timestamp > r.commitDeadline;
    }
}
