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

    /// @dev The batch leaf of a signed commitment, as the ledger computes it.
    function _batchLeaf(Commitment memory c, bytes32 r, bytes32 vs) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                ledger.COMMITMENT_TYPEHASH(), c.round, c.node, c.baseVersion, c.updateDigest,
                c.updateCodec, c.numSamples, c.lossBefore, c.lossAfter, c.nonce
            )
        );
        return keccak256(bytes.concat(keccak256(abi.encode(structHash, r, vs))));
    }

    // -- reputation tables (the off-chain encoding of chainml.swarm.settlement) ---------------

    function _repLeaf(address node, int64 score) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(node, score))));
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev Root of `leaves` built like chainml.chain.merkle.MerkleTree (neighbours paired level
    /// by level, an odd last node carried up); zero for no leaves.
    function _root(bytes32[] memory leaves) internal pure returns (bytes32) {
        if (leaves.length == 0) return bytes32(0);
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            bytes32[] memory next = new bytes32[]((level.length + 1) / 2);
            for (uint256 i = 0; i + 1 < level.length; i += 2) next[i / 2] = _hashPair(level[i], level[i + 1]);
            if (level.length % 2 == 1) next[next.length - 1] = level[level.length - 1];
            level = next;
        }
        return level[0];
    }

    /// @dev Proof of `leaves[index]` in `_root(leaves)`.
    function _proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory) {
        bytes32[] memory out = new bytes32[](16);
        uint256 n = 0;
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) out[n++] = level[sibling];
            bytes32[] memory next = new bytes32[]((level.length + 1) / 2);
            for (uint256 i = 0; i + 1 < level.length; i += 2) next[i / 2] = _hashPair(level[i], level[i + 1]);
            if (level.length % 2 == 1) next[next.length - 1] = level[level.length - 1];
            level = next;
            index /= 2;
        }
        bytes32[] memory proof = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) proof[i] = out[i];
        return proof;
    }

    /// @dev A reputation table over `who` with `scores`: the recorded root is the pair of the
    /// full tree and the tree of nodes below `initial`.
    function _tableRoot(address[] memory who, int64[] memory scores, int64 initial)
        internal
        pure
        returns (bytes32)
    {
        (bytes32[] memory all, bytes32[] memory below,) = _tableLeaves(who, scores, initial);
        return _hashPair(_root(all), _root(below));
    }

    /// @dev The proof of `who[i]` against `_tableRoot(who, scores, initial)`.
    function _tableProof(address[] memory who, int64[] memory scores, int64 initial, uint256 i)
        internal
        pure
        returns (bytes32[] memory proof)
    {
        (bytes32[] memory all, bytes32[] memory below, uint256[] memory belowIndex) =
            _tableLeaves(who, scores, initial);
        bytes32[] memory inner;
        bytes32 other;
        if (scores[i] < initial) {
            inner = _proof(below, belowIndex[i]);
            other = _root(all);
        } else {
            inner = _proof(all, i);
            other = _root(below);
        }
        proof = new bytes32[](inner.length + 1);
        for (uint256 k = 0; k < inner.length; ++k) proof[k] = inner[k];
        proof[inner.length] = other;
    }

    function _tableLeaves(address[] memory who, int64[] memory scores, int64 initial)
        private
        pure
        returns (bytes32[] memory all, bytes32[] memory below, uint256[] memory belowIndex)
    {
        all = new bytes32[](who.length);
        belowIndex = new uint256[](who.length);
        uint256 nb = 0;
        for (uint256 i = 0; i < who.length; ++i) {
            all[i] = _repLeaf(who[i], scores[i]);
            if (scores[i] < initial) belowIndex[i] = nb++;
        }
        below = new bytes32[](nb);
        for (uint256 i = 0; i < who.length; ++i) {
            if (scores[i] < initial) below[belowIndex[i]] = all[i];
        }
    }

    function _one(address a) internal pure returns (address[] memory out) {
        out = new address[](1);
        out[0] = a;
    }

    function _eq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": values differ"));
    }

    function _true(bool ok, string memory what) internal pure {
        if (!ok) revert(what);
    }
}
