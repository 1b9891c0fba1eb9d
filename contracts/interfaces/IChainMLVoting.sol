// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IChainMLTypes} from "./IChainMLTypes.sol";

/// @title Events and errors of chainml aggregation voting
/// @notice An aggregator proposes an aggregate for a round; validators vote with commit-reveal
/// (one vote each) so they cannot copy each other; reaching quorum finalizes a new version.
interface IChainMLVoting is IChainMLTypes {
    /// @notice What an aggregator proposes. Included and excluded nodes are Merkle roots over
    /// node addresses (leaf = keccak256(bytes.concat(keccak256(abi.encode(node))))), with the
    /// full lists on IPFS; excluded nodes are the outliers the rule rejected.
    /// The reputation table (on IPFS at `reputationTable`) holds every registered node's
    /// reputation after this round; `reputationRoot` is its Merkle root (leaf =
    /// keccak256(bytes.concat(keccak256(abi.encode(node, int64 score))))), built on
    /// `parentReputationRoot` (the ledger's latest root, so roots chain round by round).
    /// `gatedCount` is the number of nodes whose score falls below the initial reputation in
    /// this round: each must be proven on the ledger before the next round opens.
    struct ProposalInput {
        uint256 round;
        Cid aggregate;
        Cid metrics;
        bytes32 includedRoot;
        uint32 includedCount;
        Cid includedList;
        bytes32 excludedRoot;
        uint32 excludedCount;
        Cid excludedList;
        uint16 ruleId;
        bytes32 parentReputationRoot;
        bytes32 reputationRoot;
        Cid reputationTable;
        uint32 gatedCount;
    }

    /// @notice Life cycle of a proposal.
    enum ProposalStatus {
        None,
        Pending,
        Accepted,
        Rejected
    }

    /// @notice Life cycle of one validator's vote on one proposal.
    enum VoteState {
        None,
        Committed,
        Revealed,
        Forfeited
    }

    /// @notice An aggregate was proposed; votes may be committed until `commitDeadline` (or
    /// until every validator has committed) and revealed until `revealDeadline`.
    event ProposalSubmitted(
        uint256 indexed proposalId,
        uint256 indexed round,
        address indexed proposer,
        ProposalInput proposal,
        uint256 validatorCount,
        uint256 commitDeadline,
        uint256 revealDeadline
    );
    /// @notice A validator committed the hash of its vote.
    event VoteCommitted(uint256 indexed proposalId, address indexed validator, bytes32 commitment);
    /// @notice A validator revealed its vote.
    event VoteRevealed(uint256 indexed proposalId, address indexed validator, bool approve);
    /// @notice The proposal reached quorum and its aggregate is now version `version`.
    event ProposalAccepted(
        uint256 indexed proposalId, uint256 indexed round, uint256 indexed version, uint256 yes, uint256 no
    );
    /// @notice The proposal was rejected; the proposer was penalized and a replacement may be
    /// proposed.
    event ProposalRejected(
        uint256 indexed proposalId, uint256 indexed round, address indexed proposer, uint256 yes, uint256 no
    );

    /// @notice A validator committed a vote and did not reveal it by the deadline; it lost
    /// reputation.
    event VoteForfeited(uint256 indexed proposalId, address indexed validator);

    /// @notice The caller does not hold the aggregator role.
    error VotingNotAggregator(address account);
    /// @notice The caller is not in the round's snapshotted validator set.
    error VotingNotValidator(address account);
    /// @notice There are no validators to vote.
    error VotingNoValidators();
    /// @notice The aggregate CID is empty.
    error VotingEmptyAggregate();
    /// @notice The round already has a pending proposal.
    error VotingProposalPending(uint256 round, uint256 proposalId);
    /// @notice No such proposal.
    error VotingProposalUnknown(uint256 proposalId);
    /// @notice The proposal is no longer pending.
    error VotingProposalNotPending(uint256 proposalId, ProposalStatus status);
    /// @notice The validator already committed a vote on this proposal.
    error VotingAlreadyVoted(uint256 proposalId, address validator);
    /// @notice The vote commitment is reserved (0, 1 and 2 mark empty and revealed votes).
    error VotingInvalidCommitment(bytes32 commitment);
    /// @notice The vote commit phase is over.
    error VotingCommitPhaseOver(uint256 proposalId, uint256 deadline);
    /// @notice Votes cannot be revealed yet: the commit phase is still running.
    error VotingCommitPhaseActive(uint256 proposalId, uint256 deadline);
    /// @notice The reveal phase is over.
    error VotingRevealPhaseOver(uint256 proposalId, uint256 deadline);
    /// @notice The validator has no committed vote to reveal.
    error VotingNoCommittedVote(uint256 proposalId, address validator);
    /// @notice The validator already revealed.
    error VotingAlreadyRevealed(uint256 proposalId, address validator);
    /// @notice The revealed vote and salt do not match the commitment.
    error VotingRevealMismatch(uint256 proposalId, address validator);
    /// @notice Not enough yes votes to finalize.
    error VotingQuorumNotReached(uint256 proposalId, uint256 yes, uint256 required);
    /// @notice The reveal phase is still running (a non-reveal is penalized only after it).
    error VotingRevealPhaseActive(uint256 proposalId, uint256 deadline);
    /// @notice The validator's vote is not a committed, unrevealed one.
    error VotingNothingToForfeit(uint256 proposalId, address validator);
    /// @notice The proposal can still reach quorum, so it cannot be rejected yet.
    error VotingRejectionNotAllowed(uint256 proposalId, uint256 yes, uint256 no);
}
