// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {ChainMLParams} from "../../contracts/ChainMLParams.sol";
import {IChainMLLedger} from "../../contracts/interfaces/IChainMLLedger.sol";
import {IChainMLParams} from "../../contracts/interfaces/IChainMLParams.sol";
import {ChainMLLedger} from "../../contracts/ChainMLLedger.sol";
import {IChainMLTypes} from "../../contracts/interfaces/IChainMLTypes.sol";
import {ChainMLVoting} from "../../contracts/ChainMLVoting.sol";
import {IChainMLVoting} from "../../contracts/interfaces/IChainMLVoting.sol";
import {ChainMLLedger as OldLedger} from "../legacy/contracts/ChainMLLedger.sol";
import {ChainMLVoting as OldVoting} from "../legacy/contracts/ChainMLVoting.sol";
import {IChainMLTypes as Old} from "../legacy/contracts/interfaces/IChainMLTypes.sol";
import {IChainMLVoting as OldVotingTypes} from "../legacy/contracts/interfaces/IChainMLVoting.sol";

/// @dev Each finding of issue 12, twice: the attack succeeds on the wave-1 contracts
/// (foundry/legacy, `*_legacy`), and fails on today's (`*_fixed`).
contract RegressionTest is Base {
    OldLedger internal old;
    OldVoting internal oldVoting;

    function setUp() public {
        _deploy();
        old = new OldLedger(
            admin, Old.Cid(keccak256("genesis"), 0x55), Old.Cid(bytes32(0), 0),
            OldLedger.ReputationParams(1_000, 10, 50, 100, 100)
        );
        oldVoting = new OldVoting(old);
        vm.startPrank(admin);
        old.grantRole(old.VOTING_ROLE(), address(oldVoting));
        old.grantRole(old.AGGREGATOR_ROLE(), aggregator);
        for (uint256 i = 0; i < VALIDATORS; ++i) old.grantRole(old.VALIDATOR_ROLE(), validators[i]);
        for (uint256 i = 0; i < NODES; ++i) {
            old.registerNode(nodes[i], Old.Cid(keccak256(abi.encode(i)), 0x55), gateway);
        }
        vm.stopPrank();
    }

    // -- helpers ---------------------------------------------------------------------------

    function _oldParams(uint16 quorumBps, uint32 window) internal pure returns (Old.RoundParams memory) {
        return Old.RoundParams(3_600, 1, quorumBps, window, 600, 600);
    }

    function _oldOpen(uint16 quorumBps, uint32 window) internal returns (uint256 roundId) {
        uint256 base = old.currentVersion();
        vm.prank(aggregator);
        roundId = old.openRound(base, _oldParams(quorumBps, window));
    }

    function _newOpen() internal returns (uint256 roundId) {
        uint256 base = ledger.currentVersion();
        vm.prank(aggregator);
        roundId = ledger.openRound(base);
    }

    function _oldCommit(uint256 i, uint256 roundId) internal {
        Old.Commitment memory c = Old.Commitment(
            roundId, nodes[i], old.currentVersion(), keccak256(abi.encode(i)), 0x55, 10, 2e9, 1e9,
            uint64(roundId)
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKeys[i], old.commitmentDigest(c));
        vm.prank(nodes[i]);
        old.commit(c, r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
    }

    function _newCommit(uint256 i, uint256 roundId) internal {
        Commitment memory c = _commitment(i, roundId, uint64(roundId));
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[i], c);
        vm.prank(nodes[i]);
        ledger.commit(c, r, vs);
    }

    function _oldProposal(uint256 roundId, bytes32 tag)
        internal
        pure
        returns (OldVotingTypes.ProposalInput memory p)
    {
        p.round = roundId;
        p.aggregate = Old.Cid(tag, 0x55);
        p.includedRoot = tag;
        p.includedCount = 1;
    }

    function _newProposal(uint256 roundId, bytes32 tag)
        internal
        pure
        returns (IChainMLVoting.ProposalInput memory p)
    {
        p.round = roundId;
        p.aggregate = Cid(tag, 0x55);
        p.includedRoot = tag;
        p.includedCount = 1;
    }

    function _oldVote(uint256 pid, uint256 voters, bool approve) internal {
        for (uint256 i = 0; i < voters; ++i) {
            bytes32 vote = oldVoting.voteCommitment(pid, validators[i], approve, "s");
            vm.prank(validators[i]);
            oldVoting.commitVote(pid, vote);
        }
        vm.warp(block.timestamp + 601);
        for (uint256 i = 0; i < voters; ++i) {
            vm.prank(validators[i]);
            oldVoting.revealVote(pid, approve, "s");
        }
    }

    function _newVote(uint256 pid, uint256 voters, bool approve) internal {
        for (uint256 i = 0; i < voters; ++i) {
            bytes32 vote = voting.voteCommitment(pid, validators[i], approve, "s");
            vm.prank(validators[i]);
            voting.commitVote(pid, vote);
        }
        vm.warp(block.timestamp + 601);
        for (uint256 i = 0; i < voters; ++i) {
            vm.prank(validators[i]);
            voting.revealVote(pid, approve, "s");
        }
    }

    function _pair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    // -- H1: batch counts taken on trust ------------------------------------------------------

    /// One declared leaf, three bad leaves in the tree: three challenges wrap commitCount.
    function test_H1_underflow_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        bytes32[3] memory leaves;
        Old.Commitment[3] memory cs;
        bytes32[3] memory rs;
        bytes32[3] memory vss;
        for (uint256 i = 0; i < 3; ++i) {
            cs[i] = Old.Commitment(roundId + 9, nodes[i], 0, bytes32(i), 0x55, 1, 1, 1, 0);
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKeys[i], old.commitmentDigest(cs[i]));
            rs[i] = r;
            vss[i] = bytes32(uint256(s) | (uint256(v - 27) << 255));
            leaves[i] = old.batchLeaf(cs[i], rs[i], vss[i]);
        }
        bytes32 ab = _pair(leaves[0], leaves[1]);
        bytes32 root = _pair(ab, leaves[2]);
        vm.prank(gateway);
        uint256 batchId = old.postBatch(roundId, root, 1, Old.Cid(root, 0x55));
        bytes32[] memory p0 = new bytes32[](2);
        (p0[0], p0[1]) = (leaves[1], leaves[2]);
        bytes32[] memory p1 = new bytes32[](2);
        (p1[0], p1[1]) = (leaves[0], leaves[2]);
        bytes32[] memory p2 = new bytes32[](1);
        p2[0] = ab;
        old.challengeLeaf(batchId, cs[0], rs[0], vss[0], p0);
        old.challengeLeaf(batchId, cs[1], rs[1], vss[1], p1);
        old.challengeLeaf(batchId, cs[2], rs[2], vss[2], p2);
        _eq(old.round(roundId).commitCount, type(uint32).max - 1, "legacy did not wrap");
    }

    function test_H1_phantom_count_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        vm.prank(gateway);
        old.postBatch(roundId, keccak256("r"), type(uint32).max, Old.Cid(bytes32(0), 0x55));
        vm.expectRevert(); // Panic(0x11): the round is blocked for honest commits
        this.oldCommitExternal(0, roundId);
    }

    function oldCommitExternal(uint256 i, uint256 roundId) external {
        _oldCommit(i, roundId);
    }

    function test_H1_phantom_count_fixed() public {
        uint256 roundId = _newOpen();
        vm.prank(gateway);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerTooManyLeaves.selector, gateway, uint256(type(uint32).max), NODES
            )
        );
        ledger.postBatch(roundId, keccak256("r"), type(uint32).max, Cid(bytes32(0), 0x55));
        _newCommit(0, roundId);
        _eq(ledger.round(roundId).commitCount, 1, "honest commit lost");
    }

    function test_H1_any_gateway_legacy() public {
        address mallory = address(0xBAD);
        vm.prank(nodes[0]);
        old.setNodeGateway(nodes[0], mallory);
        uint256 roundId = _oldOpen(6_600, 600);
        vm.prank(mallory);
        old.postBatch(roundId, keccak256("r"), 100, Old.Cid(bytes32(0), 0x55));
        _eq(old.round(roundId).commitCount, 100, "legacy refused the phantom gateway");
    }

    function test_H1_any_gateway_fixed() public {
        address mallory = address(0xBAD);
        vm.prank(nodes[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerGatewayNotConsenting.selector, nodes[0], mallory
            )
        );
        ledger.setNodeGateway(nodes[0], mallory);
        vm.prank(mallory);
        ledger.consentToNode(nodes[0], true);
        vm.prank(nodes[0]);
        ledger.setNodeGateway(nodes[0], mallory); // with the gateway's consent: fine
        uint256 roundId = _newOpen();
        vm.prank(mallory); // but it still needs a bond, and may claim one leaf at most
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLLedger.LedgerTooManyLeaves.selector, mallory, 100, 1)
        );
        ledger.postBatch(roundId, keccak256("r"), 100, Cid(bytes32(0), 0x55));
    }

    // -- H2: the aggregator chose the quorum ------------------------------------------------

    function test_H2_quorum_legacy() public {
        uint256 roundId = _oldOpen(1, 600); // 1 bps
        _oldCommit(0, roundId);
        vm.prank(aggregator);
        old.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = oldVoting.propose(_oldProposal(roundId, keccak256("made-up")));
        _oldVote(pid, 1, true); // one validator of three
        oldVoting.finalize(pid);
        _eq(old.currentVersion(), 1, "legacy refused a 1-of-3 finalization");
    }

    function test_H2_quorum_fixed() public {
        uint256 roundId = _newOpen(); // no parameters: the ledger's, fixed at deployment
        SecurityParams memory p = _params();
        p.quorumBps = 1;
        ChainMLParams params = ledger.params();
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLParams.ParamsOutOfBounds.selector, 2, 1, 5_001, 10_000)
        );
        params.queue(p);
        _newCommit(0, roundId);
        vm.prank(aggregator);
        ledger.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = voting.propose(_newProposal(roundId, keccak256("made-up")));
        _newVote(pid, 1, true);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLVoting.VotingQuorumNotReached.selector, pid, 1, 2)
        );
        voting.finalize(pid);
    }

    // -- H3: batched mode with no bond and no window -----------------------------------------

    function test_H3_no_window_no_bond_legacy() public {
        uint256 roundId = _oldOpen(6_600, 0); // zero challenge window
        vm.prank(gateway); // no bond at all
        uint256 batchId = old.postBatch(roundId, keccak256("r"), 3, Old.Cid(bytes32(0), 0x55));
        _eq(old.batch(batchId).challengeDeadline, block.timestamp, "legacy had a window");
    }

    function test_H3_no_window_no_bond_fixed() public {
        SecurityParams memory p = _params();
        p.challengeWindow = 0;
        ChainMLParams params = ledger.params();
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLParams.ParamsOutOfBounds.selector, 3, 0, 60, 30 days)
        );
        params.queue(p);
        address other = address(0x6A7F);
        vm.prank(admin);
        ledger.setNodeGateway(nodes[5], other);
        uint256 roundId = _newOpen();
        vm.prank(other);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLParams.ParamsBondTooLow.selector, other, 0, 1 ether)
        );
        ledger.postBatch(roundId, keccak256("r"), 1, Cid(bytes32(0), 0x55));
    }

    // -- mediums ------------------------------------------------------------------------------

    function test_admin_finalizes_alone_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        _oldCommit(0, roundId);
        vm.startPrank(admin);
        old.closeCommitPhase(roundId);
        old.grantRole(old.VOTING_ROLE(), admin);
        old.finalizeRound(roundId, Old.Cid(keccak256("x"), 0x55), Old.Cid(0, 0), 0, 0);
        vm.stopPrank();
        _eq(old.currentVersion(), 1, "legacy admin could not finalize");
    }

    function test_admin_finalizes_alone_fixed() public {
        bytes32 role = ledger.VOTING_ROLE();
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLLedger.LedgerVotingRoleLocked.selector, admin)
        );
        ledger.grantRole(role, admin);
    }

    function test_mid_round_validator_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        _oldCommit(0, roundId);
        vm.prank(aggregator);
        old.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = oldVoting.propose(_oldProposal(roundId, keccak256("a")));
        address newcomer = address(0xBEEF);
        vm.startPrank(admin);
        old.grantRole(old.VALIDATOR_ROLE(), newcomer);
        vm.stopPrank();
        vm.prank(newcomer);
        oldVoting.commitVote(pid, keccak256("v")); // accepted
    }

    function test_mid_round_validator_fixed() public {
        uint256 roundId = _newOpen();
        _newCommit(0, roundId);
        vm.prank(aggregator);
        ledger.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = voting.propose(_newProposal(roundId, keccak256("a")));
        address newcomer = address(0xBEEF);
        bytes32 role = ledger.VALIDATOR_ROLE();
        vm.prank(admin);
        ledger.grantRole(role, newcomer);
        vm.prank(newcomer);
        vm.expectRevert(abi.encodeWithSelector(IChainMLVoting.VotingNotValidator.selector, newcomer));
        voting.commitVote(pid, keccak256("v"));
    }

    function test_close_away_quorum_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        _oldCommit(0, roundId);
        vm.prank(aggregator);
        old.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = oldVoting.propose(_oldProposal(roundId, keccak256("a")));
        _oldVote(pid, 3, true);
        vm.prank(aggregator);
        old.closeRound(roundId); // vetoes a proposal with quorum
        vm.expectRevert();
        oldVoting.finalize(pid);
    }

    function test_close_away_quorum_fixed() public {
        uint256 roundId = _newOpen();
        _newCommit(0, roundId);
        vm.prank(aggregator);
        ledger.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = voting.propose(_newProposal(roundId, keccak256("a")));
        _newVote(pid, 3, true);
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLLedger.LedgerProposalPending.selector, roundId)
        );
        ledger.closeRound(roundId);
        _eq(voting.finalize(pid), 1, "quorum proposal not finalized");
    }

    function test_unlimited_replacements_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        _oldCommit(0, roundId);
        vm.prank(aggregator);
        old.closeCommitPhase(roundId);
        for (uint256 k = 0; k < 5; ++k) {
            vm.prank(aggregator);
            uint256 pid = oldVoting.propose(_oldProposal(roundId, keccak256(abi.encode(k))));
            _oldVote(pid, 2, false);
            oldVoting.reject(pid);
        }
        _eq(oldVoting.proposalCount(), 5, "legacy bounded replacements");
    }

    function test_unlimited_replacements_fixed() public {
        uint256 roundId = _newOpen();
        _newCommit(0, roundId);
        vm.prank(aggregator);
        ledger.closeCommitPhase(roundId);
        for (uint256 k = 0; k < 2; ++k) {
            vm.prank(aggregator);
            uint256 pid = voting.propose(_newProposal(roundId, keccak256(abi.encode(k))));
            _newVote(pid, 2, false);
            voting.reject(pid);
        }
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLLedger.LedgerTooManyProposals.selector, roundId, 2)
        );
        voting.propose(_newProposal(roundId, keccak256("third")));
    }

    function test_front_run_relay_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        _oldCommit(0, roundId); // node 0 front-runs its gateway
        Old.RelayedCommitment[] memory items = new Old.RelayedCommitment[](2);
        for (uint256 i = 0; i < 2; ++i) {
            Old.Commitment memory c = Old.Commitment(
                roundId, nodes[i], 0, keccak256(abi.encode(i)), 0x55, 10, 2e9, 1e9, 5
            );
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKeys[i], old.commitmentDigest(c));
            items[i] = Old.RelayedCommitment(
                nodes[i], c.updateDigest, 0x55, 10, 2e9, 1e9, 5, r,
                bytes32(uint256(s) | (uint256(v - 27) << 255))
            );
        }
        vm.prank(gateway);
        vm.expectRevert(); // the whole relay, node 1 included, is lost
        old.commitRelayed(roundId, 0, items);
    }

    function test_front_run_relay_fixed() public {
        uint256 roundId = _newOpen();
        _newCommit(0, roundId);
        RelayedCommitment[] memory items = new RelayedCommitment[](2);
        for (uint256 i = 0; i < 2; ++i) {
            Commitment memory c = _commitment(i, roundId, 5);
            (bytes32 r, bytes32 vs) = _sign(nodeKeys[i], c);
            items[i] = RelayedCommitment(nodes[i], c.updateDigest, 0x55, 10, 2e9, 1e9, 5, r, vs);
        }
        vm.prank(gateway);
        ledger.commitRelayed(roundId, 0, items);
        _eq(ledger.round(roundId).commitCount, 2, "the relay lost node 1");
    }

    function test_honest_gateway_blamed_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        Old.Commitment memory c =
            Old.Commitment(roundId, nodes[0], 0, keccak256("u"), 0x55, 10, 2e9, 1e9, 0);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(nodeKeys[0], old.commitmentDigest(c));
        bytes32 vs = bytes32(uint256(s) | (uint256(v - 27) << 255));
        bytes32 leaf = old.batchLeaf(c, r, vs);
        vm.prank(gateway);
        uint256 batchId = old.postBatch(roundId, leaf, 1, Old.Cid(leaf, 0x55));
        vm.prank(admin);
        old.deactivateNode(nodes[0]); // after the batch was posted
        old.challengeLeaf(batchId, c, r, vs, new bytes32[](0));
        _true(old.reputationOf(gateway) < 0, "legacy spared the honest gateway");
    }

    function test_honest_gateway_blamed_fixed() public {
        uint256 roundId = _newOpen();
        Commitment memory c = _commitment(0, roundId, 0);
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[0], c);
        bytes32 leaf = _batchLeaf(c, r, vs);
        vm.prank(gateway);
        uint256 batchId = ledger.postBatch(roundId, leaf, 1, Cid(leaf, 0x55));
        vm.warp(block.timestamp + 1);
        vm.prank(admin);
        ledger.deactivateNode(nodes[0]);
        ledger.challengeLeaf(batchId, c, r, vs, new bytes32[](0)); // voided: no longer counts
        _eq(ledger.round(roundId).commitCount, 0, "deactivated node still counted");
        _true(ledger.reputationOf(gateway) == 0, "honest gateway penalized");
        (uint256 bond,) = ledger.params().bondOf(gateway);
        _eq(bond, 5 ether, "honest gateway slashed");
    }

    // -- reputation: gating, settlement order, unrevealed votes ------------------------------

    function _addrLeaf(address a) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(a))));
    }

    function test_reputation_gates_nothing_legacy() public {
        OldLedger low = new OldLedger(
            admin, Old.Cid(keccak256("g"), 0x55), Old.Cid(bytes32(0), 0),
            OldLedger.ReputationParams(500, 10, 50, 100, 100)
        );
        vm.prank(admin);
        low.registerNode(nodes[0], Old.Cid(keccak256("p"), 0x55), address(0));
        bytes32 role = low.AGGREGATOR_ROLE();
        vm.prank(admin);
        low.grantRole(role, aggregator);
        vm.prank(aggregator);
        uint256 roundId = low.openRound(0, _oldParams(6_600, 600));
        Old.Commitment memory c =
            Old.Commitment(roundId, nodes[0], 0, keccak256("u"), 0x55, 10, 2e9, 1e9, 0);
        (uint8 v, bytes32 r, bytes32 sig) = vm.sign(nodeKeys[0], low.commitmentDigest(c));
        vm.prank(nodes[0]);
        low.commit(c, r, bytes32(uint256(sig) | (uint256(v - 27) << 255)));
        _eq(low.round(roundId).commitCount, 1, "legacy gated the commitment");
    }

    function test_reputation_gates_commits_fixed() public {
        ledger = new LowReputationDeployer().deployLow(admin, _params());
        bytes32 role = ledger.AGGREGATOR_ROLE();
        vm.startPrank(admin);
        ledger.grantRole(role, aggregator);
        ledger.grantRole(ledger.VALIDATOR_ROLE(), validators[0]);
        ledger.registerNode(nodes[0], Cid(keccak256("p"), 0x55), address(0));
        vm.stopPrank();
        uint256 roundId = _newOpen();
        Commitment memory c = _commitment(0, roundId, 0);
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[0], c);
        vm.prank(nodes[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerReputationTooLow.selector, nodes[0], int64(500), int64(700)
            )
        );
        ledger.commit(c, r, vs);
    }

    /// Proposes and finalizes `roundId` with `who`/`scores` as its reputation table (node 0
    /// of `who` excluded, the rest included).
    function _finalizeWithTable(
        uint256 roundId,
        bytes32 parent,
        address[] memory who,
        int64[] memory scores,
        uint32 gated
    ) internal returns (bytes32 root) {
        IChainMLVoting.ProposalInput memory p = _newProposal(roundId, keccak256(abi.encode(roundId)));
        p.excludedRoot = _addrLeaf(who[0]);
        p.excludedCount = 1;
        p.parentReputationRoot = parent;
        root = _tableRoot(who, scores, 1_000);
        p.reputationRoot = root;
        p.gatedCount = gated;
        vm.prank(aggregator);
        uint256 pid = voting.propose(p);
        _newVote(pid, 3, true);
        voting.finalize(pid);
    }

    function _pairOf(address a, address b) internal pure returns (address[] memory who) {
        who = new address[](2);
        (who[0], who[1]) = (a, b);
    }

    function _scores(int64 a, int64 b) internal pure returns (int64[] memory s) {
        s = new int64[](2);
        (s[0], s[1]) = (a, b);
    }

    function _prove(address[] memory who, int64[] memory scores, uint256 i) internal {
        bytes32[][] memory proofs = new bytes32[][](1);
        proofs[0] = _tableProof(who, scores, 1_000, i);
        int64[] memory one = new int64[](1);
        one[0] = scores[i];
        ledger.proveReputations(_one(who[i]), one, proofs);
    }

    /// One exclusion (-400) takes node 0 below the minimum (700) in the round's reputation
    /// table: once proven (settled), its next commitment is refused, directly and through a
    /// relay, while the included node 1 commits as before.
    function test_penalized_node_is_gated_fixed() public {
        ledger = new LowReputationDeployer().deployHarsh(admin, _params());
        voting = new ChainMLVoting(ledger);
        vm.startPrank(admin);
        ledger.grantRole(ledger.VOTING_ROLE(), address(voting));
        ledger.grantRole(ledger.AGGREGATOR_ROLE(), aggregator);
        for (uint256 i = 0; i < VALIDATORS; ++i) ledger.grantRole(ledger.VALIDATOR_ROLE(), validators[i]);
        ledger.registerNode(nodes[0], Cid(keccak256("p0"), 0x55), gateway);
        ledger.registerNode(nodes[1], Cid(keccak256("p1"), 0x55), gateway);
        vm.stopPrank();
        uint256 first = _newOpen();
        _newCommit(0, first);
        _newCommit(1, first);
        vm.prank(aggregator);
        ledger.closeCommitPhase(first);
        address[] memory who = _pairOf(nodes[0], nodes[1]);
        int64[] memory scores = _scores(600, 1_010);
        _finalizeWithTable(first, bytes32(0), who, scores, 1);
        _prove(who, scores, 0);
        uint256 second = _newOpen();
        Commitment memory c = _commitment(0, second, uint64(second));
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[0], c);
        vm.prank(nodes[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerReputationTooLow.selector, nodes[0], int64(600), int64(700)
            )
        );
        ledger.commit(c, r, vs);
        RelayedCommitment[] memory items = new RelayedCommitment[](1);
        items[0] = RelayedCommitment(nodes[0], c.updateDigest, 0x55, 10, 2e9, 1e9, c.nonce, r, vs);
        vm.prank(gateway);
        ledger.commitRelayed(second, c.baseVersion, items);
        _eq(ledger.round(second).commitCount, 0, "gated node counted through a relay");
        _newCommit(1, second);
        _eq(ledger.round(second).commitCount, 1, "included node refused");
    }

    /// A node excluded once (950, below the initial 1,000 but above the minimum 700) proves
    /// its score and is included again; a later table puts it back above the initial score,
    /// and its proof then clears its must-prove flag. Without a proof against the latest
    /// root, a flagged node cannot commit.
    function test_node_excluded_once_recovers_fixed() public {
        ledger = new LowReputationDeployer().deployGenerous(admin, _params());
        voting = new ChainMLVoting(ledger);
        vm.startPrank(admin);
        ledger.grantRole(ledger.VOTING_ROLE(), address(voting));
        ledger.grantRole(ledger.AGGREGATOR_ROLE(), aggregator);
        for (uint256 i = 0; i < VALIDATORS; ++i) ledger.grantRole(ledger.VALIDATOR_ROLE(), validators[i]);
        ledger.registerNode(nodes[0], Cid(keccak256("p0"), 0x55), gateway);
        ledger.registerNode(nodes[1], Cid(keccak256("p1"), 0x55), gateway);
        vm.stopPrank();
        uint256 first = _newOpen();
        _newCommit(0, first);
        _newCommit(1, first);
        vm.prank(aggregator);
        ledger.closeCommitPhase(first);
        address[] memory who = _pairOf(nodes[0], nodes[1]);
        bytes32 root1 = _finalizeWithTable(first, bytes32(0), who, _scores(950, 1_100), 1);
        _prove(who, _scores(950, 1_100), 0); // settles round 1
        _true(ledger.nodeInfo(nodes[0]).mustProve, "excluded node not flagged");
        uint256 second = _newOpen();
        _newCommit(0, second); // proven at 950 >= 700: included again
        vm.prank(aggregator);
        ledger.closeCommitPhase(second);
        IChainMLVoting.ProposalInput memory p = _newProposal(second, keccak256("a2"));
        p.includedRoot = _addrLeaf(nodes[0]);
        p.parentReputationRoot = root1;
        p.reputationRoot = _tableRoot(who, _scores(1_050, 1_100), 1_000);
        vm.prank(aggregator);
        uint256 pid = voting.propose(p);
        _newVote(pid, 3, true);
        voting.finalize(pid);
        uint256 third = _newOpen(); // nothing newly gated: opens at once
        Commitment memory c = _commitment(0, third, uint64(third));
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[0], c);
        vm.prank(nodes[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerReputationNotProven.selector, nodes[0], 1, 2
            )
        );
        ledger.commit(c, r, vs);
        _prove(who, _scores(1_050, 1_100), 0);
        _true(!ledger.nodeInfo(nodes[0]).mustProve, "recovered node still flagged");
        _true(ledger.reputationOf(nodes[0]) == 1_050, "recovered score not cached");
        vm.prank(nodes[0]);
        ledger.commit(c, r, vs);
        _eq(ledger.round(third).commitCount, 1, "recovered node refused");
    }

    function test_settlement_reorder_legacy() public {
        // Round 1 excludes node 0; round 2 includes it. Settling round 2 first dodges the
        // round-1 penalty for good.
        uint256 first = _oldOpen(6_600, 600);
        _oldCommit(0, first);
        vm.prank(aggregator);
        old.closeCommitPhase(first);
        OldVotingTypes.ProposalInput memory p = _oldProposal(first, keccak256("a1"));
        p.includedRoot = _addrLeaf(nodes[1]);
        p.excludedRoot = _addrLeaf(nodes[0]);
        vm.prank(aggregator);
        uint256 pid = oldVoting.propose(p);
        _oldVote(pid, 3, true);
        oldVoting.finalize(pid);
        uint256 second = _oldOpen(6_600, 600); // legacy opens with round 1 unsettled
        _oldCommit(0, second);
        vm.prank(aggregator);
        old.closeCommitPhase(second);
        p = _oldProposal(second, keccak256("a2"));
        p.includedRoot = _addrLeaf(nodes[0]);
        vm.prank(aggregator);
        pid = oldVoting.propose(p);
        _oldVote(pid, 3, true);
        oldVoting.finalize(pid);
        address[] memory who = new address[](1);
        who[0] = nodes[0];
        bool[] memory inc = new bool[](1);
        bytes32[][] memory proofs = new bytes32[][](1);
        inc[0] = true;
        old.settleReputation(second, who, inc, proofs);
        inc[0] = false;
        vm.expectRevert(); // LedgerAlreadySettled: the exclusion can never be applied
        old.settleReputation(first, who, inc, proofs);
        _true(old.reputationOf(nodes[0]) == 1_010, "legacy applied the penalty");
    }

    /// Round 1 excludes node 0 (950, below the initial score): the next round cannot open
    /// until node 0 is proven against round 1's root (a forged score is refused), and a
    /// proposal that skips round 1's table (builds on the older root) is refused.
    function test_settlement_reorder_fixed() public {
        uint256 first = _newOpen();
        _newCommit(0, first);
        _newCommit(1, first);
        vm.prank(aggregator);
        ledger.closeCommitPhase(first);
        address[] memory who = _pairOf(nodes[0], nodes[1]);
        int64[] memory scores = _scores(950, 1_010);
        bytes32 root1 = _finalizeWithTable(first, bytes32(0), who, scores, 1);
        uint256 base = ledger.currentVersion();
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLLedger.LedgerSettlementPending.selector, first, 0, 1)
        );
        ledger.openRound(base);
        int64[] memory forged = _scores(1_000, 1_010);
        bytes32[][] memory proofs = new bytes32[][](1);
        proofs[0] = _tableProof(who, scores, 1_000, 0);
        int64[] memory one = new int64[](1);
        one[0] = forged[0];
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerInvalidMerkleProof.selector, root1,
                _repLeaf(nodes[0], 1_000)
            )
        );
        ledger.proveReputations(_one(nodes[0]), one, proofs);
        _prove(who, scores, 0);
        _true(ledger.reputationOf(nodes[0]) == 950, "exclusion not applied");
        uint256 second = _newOpen(); // settled: the next round may open
        _newCommit(1, second);
        vm.prank(aggregator);
        ledger.closeCommitPhase(second);
        IChainMLVoting.ProposalInput memory p = _newProposal(second, keccak256("a2"));
        p.reputationRoot = _tableRoot(who, _scores(1_000, 1_020), 1_000); // round 1 skipped
        vm.prank(aggregator);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChainMLLedger.LedgerStaleReputationRoot.selector, second, bytes32(0), root1
            )
        );
        voting.propose(p);
    }

    function test_unrevealed_vote_costs_nothing_legacy() public {
        uint256 roundId = _oldOpen(6_600, 600);
        _oldCommit(0, roundId);
        vm.prank(aggregator);
        old.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = oldVoting.propose(_oldProposal(roundId, keccak256("a")));
        bytes32 vote = oldVoting.voteCommitment(pid, validators[0], true, "s");
        vm.prank(validators[0]);
        oldVoting.commitVote(pid, vote); // and never reveals
        vm.warp(block.timestamp + 1_300);
        oldVoting.reject(pid);
        _true(old.reputationOf(validators[0]) == 0, "legacy penalized the withholder");
    }

    function test_unrevealed_vote_is_penalized_fixed() public {
        uint256 roundId = _newOpen();
        _newCommit(0, roundId);
        vm.prank(aggregator);
        ledger.closeCommitPhase(roundId);
        vm.prank(aggregator);
        uint256 pid = voting.propose(_newProposal(roundId, keccak256("a")));
        bytes32 vote = voting.voteCommitment(pid, validators[0], true, "s");
        vm.prank(validators[0]);
        voting.commitVote(pid, vote);
        vm.expectRevert(); // not before the reveal deadline
        voting.forfeitVote(pid, validators[0]);
        vm.warp(block.timestamp + 1_300);
        voting.forfeitVote(pid, validators[0]);
        _true(ledger.reputationOf(validators[0]) == -100, "withholder not penalized");
        vm.expectRevert(); // once
        voting.forfeitVote(pid, validators[0]);
    }
}

/// @dev Deploys a ledger whose nodes start below the reputation minimum.
contract LowReputationDeployer is IChainMLTypes {
    function deployLow(address admin_, SecurityParams memory p) external returns (ChainMLLedger l) {
        l = new ChainMLLedger(
            admin_, Cid(keccak256("g"), 0x55), Cid(bytes32(0), 0),
            ChainMLLedger.ReputationParams(500, 10, 50, 100, 100), p
        );
    }

    function deployHarsh(address admin_, SecurityParams memory p) external returns (ChainMLLedger l) {
        l = new ChainMLLedger(
            admin_, Cid(keccak256("g"), 0x55), Cid(bytes32(0), 0),
            ChainMLLedger.ReputationParams(1_000, 10, 400, 100, 100), p
        );
    }

    function deployGenerous(address admin_, SecurityParams memory p) external returns (ChainMLLedger l) {
        l = new ChainMLLedger(
            admin_, Cid(keccak256("g"), 0x55), Cid(bytes32(0), 0),
            ChainMLLedger.ReputationParams(1_000, 100, 50, 100, 100), p
        );
    }
}
