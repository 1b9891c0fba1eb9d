// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {ChainMLParams} from "../../contracts/ChainMLParams.sol";
import {IChainMLParams} from "../../contracts/interfaces/IChainMLParams.sol";
import {IChainMLLedger} from "../../contracts/interfaces/IChainMLLedger.sol";

/// @dev Fuzz tests of the issue-12 fixes (each fails on the wave-1 ledger).
contract LedgerFuzzTest is Base {
    function setUp() public {
        _deploy();
    }

    function _leaf(Commitment memory c, bytes32 r, bytes32 vs) internal view returns (bytes32) {
        return _batchLeaf(c, r, vs);
    }

    /// H1: a gateway cannot claim more leaves in a round than it has nodes behind it.
    function testFuzz_leafCountIsCapped(uint32 leafCount) public {
        vm.prank(aggregator);
        uint256 roundId = ledger.openRound(0);
        vm.prank(gateway);
        if (leafCount == 0) {
            vm.expectRevert(IChainMLLedger.LedgerEmptyBatch.selector);
        } else if (leafCount > NODES) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IChainMLLedger.LedgerTooManyLeaves.selector, gateway, leafCount, NODES
                )
            );
        }
        ledger.postBatch(roundId, keccak256("root"), leafCount, Cid(keccak256("l"), 0x55));
        _true(ledger.round(roundId).commitCount <= NODES, "count above the gateway's nodes");
    }

    /// H1: a batch declaring 1 leaf whose root holds 2 bad leaves cannot wrap commitCount.
    function testFuzz_challengeCannotUnderflow(uint256 seed) public {
        vm.prank(aggregator);
        uint256 roundId = ledger.openRound(0);
        Commitment memory a = _commitment(0, roundId + 1 + (seed % 5), 0); // wrong round
        Commitment memory b = _commitment(1, roundId + 7, 0);
        (bytes32 ra, bytes32 va) = _sign(nodeKeys[0], a);
        (bytes32 rb, bytes32 vb) = _sign(nodeKeys[1], b);
        bytes32 la = _leaf(a, ra, va);
        bytes32 lb = _leaf(b, rb, vb);
        bytes32 root = la < lb ? keccak256(abi.encode(la, lb)) : keccak256(abi.encode(lb, la));
        vm.prank(gateway);
        uint256 batchId = ledger.postBatch(roundId, root, 1, Cid(keccak256("l"), 0x55));
        bytes32[] memory pa = new bytes32[](1);
        pa[0] = lb;
        bytes32[] memory pb = new bytes32[](1);
        pb[0] = la;
        ledger.challengeLeaf(batchId, a, ra, va, pa);
        _eq(ledger.round(roundId).commitCount, 0, "voided leaf still counted");
        vm.expectRevert(
            abi.encodeWithSelector(IChainMLLedger.LedgerVoidOverflow.selector, batchId, 1, 1)
        );
        ledger.challengeLeaf(batchId, b, rb, vb, pb);
        _eq(ledger.round(roundId).commitCount, 0, "commitCount moved");
    }

    /// H3: a successful challenge slashes the gateway's bond and rewards the challenger.
    function testFuzz_challengeSlashesAndRewards(address challenger) public {
        vm.assume(challenger != address(0) && challenger.code.length == 0);
        vm.prank(aggregator);
        uint256 roundId = ledger.openRound(0);
        Commitment memory c = _commitment(0, roundId, 0);
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[1], c); // signed by the wrong key
        bytes32 leaf = _leaf(c, r, vs);
        vm.prank(gateway);
        uint256 batchId = ledger.postBatch(roundId, leaf, 1, Cid(keccak256("l"), 0x55));
        ChainMLParams p = ledger.params();
        (uint256 before,) = p.bondOf(gateway);
        vm.prank(challenger);
        ledger.challengeLeaf(batchId, c, r, vs, new bytes32[](0));
        (uint256 afterBond,) = p.bondOf(gateway);
        _eq(before - afterBond, 1 ether, "bond not slashed");
        _eq(p.rewardOf(challenger), 0.5 ether, "no challenger reward");
    }

    /// H2: parameters outside the enforced bounds are refused, and only through the timelock.
    function testFuzz_paramBounds(uint16 quorumBps, uint32 window) public {
        SecurityParams memory s = _params();
        s.quorumBps = quorumBps;
        s.challengeWindow = window;
        ChainMLParams p = ledger.params();
        bool ok = quorumBps >= 5_001 && quorumBps <= 10_000 && window >= 60 && window <= 30 days;
        vm.prank(admin);
        if (!ok) vm.expectRevert();
        p.queue(s);
        if (!ok) return;
        vm.expectRevert();
        p.applyQueued(); // timelock still running
        vm.warp(block.timestamp + 2 days);
        p.applyQueued();
        _eq(p.current().quorumBps, quorumBps, "not applied");
    }

    /// Medium: the admin can never take the voting role, so it cannot finalize alone.
    function testFuzz_votingRoleLocked(address who) public {
        bytes32 role = ledger.VOTING_ROLE();
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(IChainMLLedger.LedgerVotingRoleLocked.selector, who));
        ledger.grantRole(role, who);
        vm.stopPrank();
    }

    /// Medium: a validator granted while a round runs is not in that round's snapshot.
    function testFuzz_midRoundValidatorCannotVote(address newcomer) public {
        vm.assume(newcomer != address(0));
        for (uint256 i = 0; i < VALIDATORS; ++i) vm.assume(newcomer != validators[i]);
        vm.prank(aggregator);
        uint256 roundId = ledger.openRound(0);
        bytes32 role = ledger.VALIDATOR_ROLE();
        vm.prank(admin);
        ledger.grantRole(role, newcomer);
        _true(!ledger.isValidatorFor(roundId, newcomer), "newcomer votes in a running round");
        _true(ledger.isValidatorFor(roundId + 1, newcomer), "newcomer never votes");
        _eq(ledger.round(roundId).validatorCount, VALIDATORS, "snapshot moved");
    }
}
