// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";

/// @dev Random sequences of commits, batches (valid and forged leaves), challenges, validator
/// grants and clock moves within one round; ghost counters track what should count.
contract Handler is Base {
    uint256 public roundId;
    uint256 public ghostCounted;
    uint256 public ghostGranted;
    uint256[] internal batchIds;
    mapping(uint256 => Commitment) internal forged;
    mapping(uint256 => bytes32) internal forgedR;
    mapping(uint256 => bytes32) internal forgedVs;

    constructor() {
        _deploy();
        vm.prank(aggregator);
        roundId = ledger.openRound(0);
    }

    function commitDirect(uint256 i) external {
        i = i % NODES;
        Commitment memory c = _commitment(i, roundId, 0);
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[i], c);
        vm.prank(nodes[i]);
        try ledger.commit(c, r, vs) {
            ghostCounted += 1;
        } catch {}
    }

    /// A one-leaf batch; `bad` makes the leaf forged (signed by another node's key).
    function postBatch(uint256 i, bool bad) external {
        i = i % NODES;
        Commitment memory c = _commitment(i, roundId, 7);
        (bytes32 r, bytes32 vs) = _sign(nodeKeys[bad ? (i + 1) % NODES : i], c);
        bytes32 leaf = _batchLeaf(c, r, vs);
        vm.prank(gateway);
        try ledger.postBatch(roundId, leaf, 1, Cid(leaf, 0x55)) returns (uint256 id) {
            ghostCounted += 1;
            batchIds.push(id);
            forged[id] = c;
            forgedR[id] = r;
            forgedVs[id] = vs;
        } catch {}
    }

    function challenge(uint256 k) external {
        if (batchIds.length == 0) return;
        uint256 id = batchIds[k % batchIds.length];
        try ledger.challengeLeaf(id, forged[id], forgedR[id], forgedVs[id], new bytes32[](0)) {
            ghostCounted -= 1;
        } catch {}
    }

    function grantValidator(uint160 who) external {
        address account = address(who | 0x1000);
        bytes32 role = ledger.VALIDATOR_ROLE();
        vm.prank(admin);
        try ledger.grantRole(role, account) {
            ghostGranted += 1;
        } catch {}
    }

    function warp(uint16 seconds_) external {
        vm.warp(block.timestamp + seconds_);
    }

    function commitCount() external view returns (uint256) {
        return ledger.round(roundId).commitCount;
    }

    function snapshot() external view returns (uint256) {
        return ledger.round(roundId).validatorCount;
    }

    function reputationSum() external view returns (int256 sum) {
        for (uint256 i = 0; i < NODES; ++i) sum += ledger.reputationOf(nodes[i]);
    }
}

contract LedgerInvariantTest {
    Handler internal handler;

    function setUp() public {
        handler = new Handler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// commitCount equals the number of valid counted commitments (never wraps).
    function invariant_commitCountMatchesCountedCommitments() public view {
        require(handler.commitCount() == handler.ghostCounted(), "commitCount drifted");
    }

    /// The round's validator set is its snapshot, whatever the admin grants meanwhile.
    function invariant_validatorSnapshotFixed() public view {
        require(handler.snapshot() == 3, "validator snapshot moved");
    }

    /// Node reputation changes only through settled rounds (none settle in one open round).
    function invariant_reputationOnlyThroughSettlement() public view {
        require(handler.reputationSum() == 6_000, "node reputation moved without settlement");
    }
}
