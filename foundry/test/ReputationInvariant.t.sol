// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {IChainMLVoting} from "../../contracts/interfaces/IChainMLVoting.sol";

/// @dev Random sequences of whole rounds (every node that the ledger lets commit commits; a
/// random subset is excluded; the proposal carries the round's reputation table, chained on
/// the previous root), honest and forged reputation proofs, and clock moves. The ghost keeps
/// every finalized table, so the invariants can check that on-chain reputation only ever
/// takes a value of a finalized table, and that the on-chain gate is the table's.
contract ReputationHandler is Base {
    int64 internal constant INITIAL = 1_000;
    int64 internal constant REWARD = 10;
    int64 internal constant PENALTY = 50;

    uint256 public lastRound;
    bytes32 public ghostRoot;
    uint256 public forgedAccepted;
    uint256 public rounds;
    int64[] internal current;
    mapping(uint256 round => mapping(uint256 node => int64)) internal ghostScore;

    constructor() {
        _deploy();
        for (uint256 i = 0; i < NODES; ++i) {
            current.push(INITIAL);
            ghostScore[0][i] = INITIAL;
        }
    }

    /// One whole round; `seed` picks the excluded nodes among those that committed.
    function runRound(uint256 seed) external {
        uint256 base = ledger.currentVersion();
        vm.prank(aggregator);
        uint256 roundId;
        try ledger.openRound(base) returns (uint256 id) {
            roundId = id;
        } catch {
            return; // the last round is not settled yet
        }
        bool[] memory committed = new bool[](NODES);
        uint256 count = 0;
        for (uint256 i = 0; i < NODES; ++i) {
            Commitment memory c = _commitment(i, roundId, uint64(roundId));
            (bytes32 r, bytes32 vs) = _sign(nodeKeys[i], c);
            vm.prank(nodes[i]);
            try ledger.commit(c, r, vs) {
                committed[i] = true;
                ++count;
            } catch {}
        }
        if (count == 0) {
            vm.warp(block.timestamp + 3_601);
            vm.prank(aggregator);
            ledger.closeRound(roundId);
            return;
        }
        vm.prank(aggregator);
        ledger.closeCommitPhase(roundId);
        bool[] memory out = new bool[](NODES);
        uint256 first = NODES;
        uint256 outs = 0;
        for (uint256 i = 0; i < NODES; ++i) {
            if (!committed[i]) continue;
            if (first == NODES) first = i;
            out[i] = (seed >> i) & 1 == 1;
            if (out[i]) ++outs;
        }
        if (outs == count) out[first] = false; // the aggregate includes at least one node
        int64[] memory next = new int64[](NODES);
        uint32 included = 0;
        uint32 excluded = 0;
        uint32 gated = 0;
        for (uint256 i = 0; i < NODES; ++i) {
            next[i] = current[i];
            if (!committed[i]) continue;
            if (out[i]) {
                next[i] -= PENALTY;
                ++excluded;
            } else {
                next[i] += REWARD;
                ++included;
            }
            if (next[i] < INITIAL && current[i] >= INITIAL) ++gated;
        }
        IChainMLVoting.ProposalInput memory p;
        p.round = roundId;
        p.aggregate = Cid(keccak256(abi.encode(roundId, seed)), 0x55);
        p.includedRoot = keccak256(abi.encode("included", roundId));
        p.includedCount = included;
        p.excludedCount = excluded;
        p.parentReputationRoot = ghostRoot;
        p.reputationRoot = _tableRoot(nodes, next, INITIAL);
        p.gatedCount = gated;
        vm.prank(aggregator);
        uint256 pid = voting.propose(p);
        for (uint256 v = 0; v < VALIDATORS; ++v) {
            bytes32 vote = voting.voteCommitment(pid, validators[v], true, "s");
            vm.prank(validators[v]);
            voting.commitVote(pid, vote);
        }
        for (uint256 v = 0; v < VALIDATORS; ++v) {
            vm.prank(validators[v]);
            voting.revealVote(pid, true, "s");
        }
        voting.finalize(pid);
        lastRound = roundId;
        ghostRoot = p.reputationRoot;
        ++rounds;
        for (uint256 i = 0; i < NODES; ++i) {
            current[i] = next[i];
            ghostScore[roundId][i] = next[i];
        }
    }

    /// An honest proof of node `i`'s score in the latest table.
    function prove(uint256 i) external {
        i = i % NODES;
        _send(i, current[i]);
    }

    /// A proof of a score that is not node `i`'s in the latest table: must never be accepted.
    function proveForged(uint256 i, int64 fake) external {
        i = i % NODES;
        if (fake == current[i] || lastRound == 0) return;
        try this.sendExternal(i, fake) {
            ++forgedAccepted;
        } catch {}
    }

    function sendExternal(uint256 i, int64 score) external {
        _send(i, score);
    }

    function warp(uint16 seconds_) external {
        vm.warp(block.timestamp + seconds_);
    }

    function _send(uint256 i, int64 score) internal {
        if (lastRound == 0) return;
        bytes32[][] memory proofs = new bytes32[][](1);
        proofs[0] = _tableProof(nodes, current, INITIAL, i);
        int64[] memory one = new int64[](1);
        one[0] = score;
        ledger.proveReputations(_one(nodes[i]), one, proofs);
    }

    // -- views for the invariants ----------------------------------------------------------

    function rootOnChain() external view returns (bytes32 root, uint256 roundId) {
        return ledger.reputationRoot();
    }

    /// Whether node `i`'s on-chain reputation is exactly its score in the finalized table
    /// it was last proven against (or the initial score, never proven).
    function cacheIsATableValue(uint256 i) external view returns (bool) {
        uint256 provenRound = ledger.nodeInfo(nodes[i]).lastSettledRound;
        int64 reputation = ledger.nodeInfo(nodes[i]).reputation;
        return provenRound <= lastRound && reputation == ghostScore[provenRound][i];
    }

    /// Whether the on-chain gate of node `i` is the latest table's: once the latest round is
    /// settled, a node below the initial score must prove (so its commitment is judged on its
    /// proven score), and a node proven against the latest root is flagged iff it is below.
    function gateIsTheTables(uint256 i) external view returns (bool) {
        if (lastRound == 0) return !ledger.nodeInfo(nodes[i]).mustProve;
        bool mustProve = ledger.nodeInfo(nodes[i]).mustProve;
        uint256 provenRound = ledger.nodeInfo(nodes[i]).lastSettledRound;
        if (provenRound == lastRound && mustProve != (current[i] < INITIAL)) return false;
        bool settled = ledger.round(lastRound).settledCount >= ledger.round(lastRound).gatedCount;
        return !(settled && current[i] < INITIAL && !mustProve);
    }
}

contract ReputationInvariantTest {
    ReputationHandler internal handler;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    function setUp() public {
        handler = new ReputationHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory out) {
        bytes4[] memory selectors = new bytes4[](4);
        selectors[0] = ReputationHandler.runRound.selector;
        selectors[1] = ReputationHandler.prove.selector;
        selectors[2] = ReputationHandler.proveForged.selector;
        selectors[3] = ReputationHandler.warp.selector;
        out = new FuzzSelector[](1);
        out[0] = FuzzSelector(address(handler), selectors);
    }

    /// Reputation changes only through settled rounds (one campaign checks all three parts):
    ///  - settlement cannot be reordered: the ledger's root is always the latest finalized
    ///    round's table, each built on the previous root;
    ///  - a node's on-chain reputation is always its score in a finalized table, and no
    ///    forged proof is ever accepted;
    ///  - inclusion is gated consistently: every node's on-chain gate is the latest table's.
    /// forge-config: default.invariant.depth = 6
    function invariant_reputationChangesOnlyThroughSettledRounds() public view {
        (bytes32 root, uint256 roundId) = handler.rootOnChain();
        require(root == handler.ghostRoot(), "root is not the latest table's");
        require(roundId == handler.lastRound(), "root of another round");
        require(handler.forgedAccepted() == 0, "a forged reputation proof was accepted");
        for (uint256 i = 0; i < 6; ++i) {
            require(handler.cacheIsATableValue(i), "reputation is not a finalized table's");
            require(handler.gateIsTheTables(i), "on-chain gate differs from the table");
        }
    }
}
