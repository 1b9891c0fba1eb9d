// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IChainMLParams} from "./interfaces/IChainMLParams.sol";

/// @title chainml security parameters (timelocked), gateway bonds and challenge rewards
/// @notice Created by the ledger in its constructor. The parameters start as given at
/// deployment; afterwards only the ledger's admin may queue new ones, which anyone may apply
/// once PARAMS_TIMELOCK has passed. Every set, initial or queued, must lie within the bounds
/// below. The aggregator has no say: rounds snapshot the parameters in force when they open.
/// @dev Bonds and rewards use pull payments with checks-effects-interactions; only the ledger
/// may lock or slash a bond.
contract ChainMLParams is IChainMLParams {
    /// @notice Delay between queueing new security parameters and applying them.
    uint256 public constant PARAMS_TIMELOCK = 2 days;
    uint256 private constant _MIN_PERIOD = 60;
    uint256 private constant _MAX_PERIOD = 30 days;
    /// @dev Quorum is a strict majority at least, so no minority of validators finalizes.
    uint256 private constant _MIN_QUORUM_BPS = 5_001;
    uint256 private constant _MAX_PROPOSALS = 8;
    uint256 private constant _MAX_REWARD_BPS = 5_000;
    bytes32 private constant _ADMIN_ROLE = 0x00;

    struct BondRecord {
        uint128 amount;
        uint40 lockedUntil;
    }

    /// @notice The ledger these parameters belong to (its admin governs them).
    address public immutable ledger;

    SecurityParams private _params;
    SecurityParams private _queued;
    uint256 private _queuedEta;
    uint256 private _forfeited;
    mapping(address gateway => BondRecord) private _bonds;
    mapping(address account => uint256) private _rewards;

    /// @param initial The parameters in force from deployment; reverts {ParamsOutOfBounds}.
    /// @dev Emits {SecurityParamsApplied}.
    constructor(SecurityParams memory initial) {
        _check(initial);
        ledger = msg.sender;
        _params = initial;
        emit SecurityParamsApplied(initial);
    }

    // ----------------------------------------------------------------------------------------
    // Parameters
    // ----------------------------------------------------------------------------------------

    /// @notice Queues new security parameters; anyone may apply them after PARAMS_TIMELOCK.
    /// @dev Requirements: caller is the ledger's admin; parameters within bounds. Replaces a
    /// queued set. Emits {SecurityParamsQueued}.
    function queue(SecurityParams calldata p) external {
        _onlyAdmin();
        _check(p);
        _queued = p;
        uint256 eta = block.timestamp + PARAMS_TIMELOCK;
        _queuedEta = eta;
        emit SecurityParamsQueued(p, eta);
    }

    /// @notice Applies the queued parameters once the timelock has passed. Running rounds keep
    /// the parameters they snapshotted.
    /// @dev Requirements: a queued set whose eta has passed. Emits {SecurityParamsApplied}.
    function applyQueued() external {
        uint256 eta = _queuedEta;
        if (eta == 0) revert ParamsNoneQueued();
        if (block.timestamp < eta) revert ParamsTimelockActive(eta, block.timestamp);
        _params = _queued;
        delete _queued;
        _queuedEta = 0;
        emit SecurityParamsApplied(_params);
    }

    /// @notice Withdraws the queued parameters.
    /// @dev Requirements: caller is the ledger's admin; a queued set. Emits
    /// {SecurityParamsCancelled}.
    function cancel() external {
        _onlyAdmin();
        if (_queuedEta == 0) revert ParamsNoneQueued();
        delete _queued;
        _queuedEta = 0;
        emit SecurityParamsCancelled();
    }

    /// @notice The security parameters in force.
    function current() external view returns (SecurityParams memory) {
        return _params;
    }

    /// @notice The queued parameters and when they may apply (eta 0: none queued).
    function queued() external view returns (SecurityParams memory p, uint256 eta) {
        return (_queued, _queuedEta);
    }

    // ----------------------------------------------------------------------------------------
    // Bonds and rewards
    // ----------------------------------------------------------------------------------------

    /// @notice Adds the sent ether to the caller's gateway bond.
    /// @dev Emits {GatewayBondChanged}.
    function depositBond() external payable {
        BondRecord storage bond = _bonds[msg.sender];
        uint256 next = uint256(bond.amount) + msg.value;
        if (next > type(uint128).max) revert ParamsOutOfBounds(7, next, 0, type(uint128).max);
        bond.amount = uint128(next);
        emit GatewayBondChanged(msg.sender, int256(msg.value), next);
    }

    /// @notice Withdraws `amount` of the caller's bond once no batch of it can be challenged.
    /// @dev Requirements: bond unlocked; enough bond. Emits {GatewayBondChanged}.
    function withdrawBond(uint256 amount) external {
        BondRecord storage bond = _bonds[msg.sender];
        if (block.timestamp < bond.lockedUntil) revert ParamsBondLocked(msg.sender, bond.lockedUntil);
        if (amount > bond.amount) revert ParamsInsufficientFunds(msg.sender, bond.amount, amount);
        uint256 left = bond.amount - amount;
        bond.amount = uint128(left);
        emit GatewayBondChanged(msg.sender, -int256(amount), left);
        _send(msg.sender, amount);
    }

    /// @notice Withdraws the caller's challenge rewards.
    /// @dev Requirements: a non-zero reward. Emits {RewardWithdrawn}.
    function withdrawReward() external {
        uint256 amount = _rewards[msg.sender];
        if (amount == 0) revert ParamsInsufficientFunds(msg.sender, 0, 1);
        _rewards[msg.sender] = 0;
        emit RewardWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Ledger only: checks that `gateway` holds the bond a batch needs and locks it
    /// until `until` (the batch's challenge deadline).
    /// @dev Reverts {ParamsBondTooLow}. Emits {GatewayBondLocked}.
    function lockBond(address gateway, uint256 until) external {
        _onlyLedger();
        BondRecord storage bond = _bonds[gateway];
        uint256 required = _params.gatewayBond;
        if (bond.amount < required) revert ParamsBondTooLow(gateway, bond.amount, required);
        if (until > bond.lockedUntil) {
            bond.lockedUntil = uint40(until);
            emit GatewayBondLocked(gateway, until);
        }
    }

    /// @notice Ledger only: a challenge proved a leaf of `gateway`'s batch invalid. Slashes up
    /// to one bond unit; the challenger is credited `challengerRewardBps` of it, the rest is
    /// forfeited.
    /// @dev No external call (rewards are pulled). Emits {GatewayBondSlashed}.
    function slash(uint256 batchId, address gateway, address challenger) external {
        _onlyLedger();
        BondRecord storage bond = _bonds[gateway];
        uint256 amount = _params.gatewayBond;
        if (amount > bond.amount) amount = bond.amount;
        uint256 reward = amount * _params.challengerRewardBps / 10_000;
        bond.amount -= uint128(amount);
        _rewards[challenger] += reward;
        _forfeited += amount - reward;
        emit GatewayBondSlashed(batchId, gateway, challenger, amount, reward);
    }

    /// @notice A gateway's bond and when it unlocks.
    function bondOf(address gateway) external view returns (uint256 amount, uint256 lockedUntil) {
        BondRecord storage bond = _bonds[gateway];
        return (bond.amount, bond.lockedUntil);
    }

    /// @notice Challenge rewards `account` can withdraw.
    function rewardOf(address account) external view returns (uint256) {
        return _rewards[account];
    }

    /// @notice Slashed bond that went to no challenger.
    function forfeited() external view returns (uint256) {
        return _forfeited;
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _onlyAdmin() private view {
        if (!IAccessControl(ledger).hasRole(_ADMIN_ROLE, msg.sender)) {
            revert ParamsUnauthorized(msg.sender);
        }
    }

    function _onlyLedger() private view {
        if (msg.sender != ledger) revert ParamsUnauthorized(msg.sender);
    }

    function _check(SecurityParams memory p) private pure {
        _bound(0, p.commitPeriod, _MIN_PERIOD, _MAX_PERIOD);
        _bound(1, p.minCommitments, 1, type(uint32).max);
        _bound(2, p.quorumBps, _MIN_QUORUM_BPS, 10_000);
        _bound(3, p.challengeWindow, _MIN_PERIOD, _MAX_PERIOD);
        _bound(4, p.voteCommitPeriod, _MIN_PERIOD, _MAX_PERIOD);
        _bound(5, p.revealPeriod, _MIN_PERIOD, _MAX_PERIOD);
        _bound(6, p.maxProposals, 1, _MAX_PROPOSALS);
        _bound(7, p.gatewayBond, 1, type(uint96).max);
        _bound(8, p.challengerRewardBps, 1, _MAX_REWARD_BPS);
    }

    function _bound(uint8 param, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert ParamsOutOfBounds(param, value, min, max);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert ParamsTransferFailed(to, amount);
    }
}
