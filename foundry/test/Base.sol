// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {ChainMLLedger} from "../../contracts/ChainMLLedger.sol";
import {ChainMLVoting} from "../../contracts/ChainMLVoting.sol";
import {ChainMLParams} from "../../contracts/ChainMLParams.sol";
import {IChainMLTypes} from "../../contracts/interfaces/IChainMLTypes.sol";

/// @dev Shared deployment for the Foundry suite. npm forge-std 1.1.2 ships no ds-test, so
/// this base uses only its Vm cheatcode interface; a failed check reverts the test.
abstract contract Base is IChainMLTypes {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bool public constant IS_TEST = true;

    uint256 internal constant NODES = 6;
    uint256 internal constant VALIDATORS = 3;
    address internal admin = address(0xA11CE);
    address internal aggregator = address(0xA66);
    address internal gateway = address(0x6A7E);
    address[] internal validators;
    uint256[] internal nodeKeys;
    address[] internal nodes;
    ChainMLLedger internal ledger;
    ChainMLVoting internal voting;

    function _params() internal pure returns (SecurityParams memory) {
        return SecurityParams({
            commitPeriod: 3_600, minCommitments: 1, quorumBps: 6_600, challengeWindow: 600,
            voteCommitPeriod: 600, revealPeriod: 600, maxProposals: 2, gatewayBond: 1 ether,
            challengerRewardBps: 5_000, minReputation: 700
        });
    }

    function _deploy() internal {
        vm.warp(1_000_000);
        ledger = new ChainMLLedger(
            admin, Cid(keccak256("genesis"), 0x55), Cid(bytes32(0), 0),
            ChainMLLedger.ReputationParams(1_000, 10, 50, 100, 100), _params()
        );
        voting = new ChainMLVoting(ledger);
        vm.startPrank(admin);
        ledger.grantRole(ledger.VOTING_ROLE(), address(voting));
        ledger.grantRole(ledger.AGGREGATOR_ROLE(), aggregator);
        for (uint256 i = 0; i < VALIDATORS; ++i) {
            validators.push(address(uint160(0xBA1 + i)));
            ledger.grantRole(ledger.VALIDATOR_ROLE(), validators[i]);
        }
        for (uint256 i = 0; i < NODES; ++i) {
            nodeKeys.push(uint256(keccak256(abi.encode("node", i))));
            nodes.push(vm.addr(nodeKeys[i]));
            ledger.registerNode(nodes[i], Cid(keccak256(abi.encode(i)), 0x55), gateway);
        }
        vm.stopPrank();
        vm.deal(gateway, 10 ether);
        ChainMLParams p = ledger.params();
        vm.prank(gateway);
        p.depositBond{value: 5 ether}();
    }

    function _commitment(uint256 i, uint256 roundId, uint64 nonce)
        internal
        view
        returns (Commitment memory c)
    {
        c = Commitment({
            round: roundId, node: nodes[i], baseVersion: ledger.currentVersion(),
            updateDigest: keccak256(abi.encode("update", i, roundId)), updateCodec: 0x55,
            numSamples: 10, lossBefore: 2e9, lossAfter: 1e9, nonce: nonce
        });
    }

    function _sign(uint256 key, Commitment memory c) internal returns (bytes32 r, bytes32 vs) {
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, ledger.commitmentDigest(c));
        r = rr;
        vs = bytes32(uint256(s) | (uint256(v - 27) << 255));
    }

    function _eq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": values differ"));
    }

    function _true(bool ok, string memory what) internal pure {
        if (!ok) revert(what);
    }
}
