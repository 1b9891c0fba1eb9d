// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IChainMLTypes} from "./IChainMLTypes.sol";

/// @title Events and errors of the chainml security parameters, gateway bonds and rewards
/// @notice The ledger creates one {ChainMLParams} at deployment. Its admin (the ledger's
/// DEFAULT_ADMIN_ROLE holder) changes the parameters only through a timelock, within bounds
/// that the contract enforces; gateways bond ether there, and the ledger slashes a bond when a
/// challenge proves a gateway's leaf invalid, crediting the challenger a share.
interface IChainMLParams is IChainMLTypes {
    /// @notice New security parameters were queued; they apply from `eta` on.
    event SecurityParamsQueued(SecurityParams params, uint256 eta);
    /// @notice Security parameters took effect (rounds opened from now on use them).
    event SecurityParamsApplied(SecurityParams params);
    /// @notice Queued security parameters were withdrawn by the admin.
    event SecurityParamsCancelled();
    /// @notice A gateway's bond changed by `amount` (deposit > 0, withdrawal < 0) to `bond`.
    event GatewayBondChanged(address indexed gateway, int256 amount, uint256 bond);
    /// @notice A gateway's bond is locked until `until` (a batch can still be challenged).
    event GatewayBondLocked(address indexed gateway, uint256 until);
    /// @notice A successful challenge slashed `slashed` wei of the gateway's bond; the
    /// challenger was credited `reward` of it and the rest is forfeited (locked for good).
    event GatewayBondSlashed(
        uint256 indexed batchId,
        address indexed gateway,
        address indexed challenger,
        uint256 slashed,
        uint256 reward
    );
    /// @notice `account` withdrew `amount` wei of challenge rewards.
    event RewardWithdrawn(address indexed account, uint256 amount);

    /// @notice The caller may not do this (admin action, or a ledger-only hook).
    error ParamsUnauthorized(address account);
    /// @notice A security parameter is outside its bounds. `param` is its position in
    /// {SecurityParams} (0 commitPeriod ... 8 challengerRewardBps).
    error ParamsOutOfBounds(uint8 param, uint256 value, uint256 min, uint256 max);
    /// @notice No security parameters are queued.
    error ParamsNoneQueued();
    /// @notice The queued parameters apply only from `eta` on.
    error ParamsTimelockActive(uint256 eta, uint256 nowTime);
    /// @notice The gateway's bond is below what posting a batch needs.
    error ParamsBondTooLow(address gateway, uint256 bond, uint256 required);
    /// @notice The bond is locked until `until` (a batch of the gateway can still be challenged).
    error ParamsBondLocked(address gateway, uint256 until);
    /// @notice A withdrawal exceeds what the account holds.
    error ParamsInsufficientFunds(address account, uint256 available, uint256 requested);
    /// @notice Sending ether failed.
    error ParamsTransferFailed(address to, uint256 amount);
}
