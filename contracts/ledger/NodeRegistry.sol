// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IChainMLLedger} from "../interfaces/IChainMLLedger.sol";

/// @title Node registry, roles, validator terms, gateway consent and reputation
/// @notice Registers MCU nodes (address, hardware-profile CID, optional gateway), activates and
/// deactivates them, keeps each validator's term (the rounds it may vote in, so every round has
/// a fixed validator set from the moment it opens) and a reputation score per account.
/// A node gets a gateway only from the admin (at registration), or by naming one that the
/// admin approved or that consented to relay for it.
/// @dev Everything a commitment needs about its node (registered, active, gateway, last round
/// committed, next nonce) is packed into ONE storage slot, so a commitment touches one cold
/// slot for its node and never a fresh one (see `ChainMLLedger` for the gas budget).
abstract contract NodeRegistry is AccessControl, IChainMLLedger {
    /// @notice May open rounds, close commit phases and propose aggregates.
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    /// @notice May vote on aggregation proposals (one vote each).
    bytes32 public constant VALIDATOR_ROLE = keccak256("VALIDATOR_ROLE");
    /// @notice Held by the voting contract only: may finalize rounds and penalize proposers.
    /// Granted exactly once (binding the voting contract), never again and never revoked.
    bytes32 public constant VOTING_ROLE = keccak256("VOTING_ROLE");

    uint8 internal constant _FLAG_REGISTERED = 1;
    uint8 internal constant _FLAG_ACTIVE = 2;
    /// @dev Set while a node's score in the latest reputation table may be below
    /// `initialReputation` (its last proof said so, or it fell below in the latest round and
    /// is not settled yet): such a node proves its score to commit. A node with the flag clear
    /// needs no proof and no reputation read (see `ChainMLLedger._useNode`).
    uint8 internal constant _FLAG_MUST_PROVE = 4;

    /// @dev One slot: 160 + 32 + 56 + 8 = 256 bits.
    struct NodeRecord {
        address gateway;
        uint32 lastCommitRound;
        uint56 nextNonce;
        uint8 flags;
    }

    /// @dev One slot per account, never written on commit. `score` moves through on-chain
    /// penalties (gateways, proposers, validators); a node's own reputation lives in the
    /// reputation table, and `provenScore` caches its score in the table of finalized round
    /// `provenRound` (the initial score, for a node registered after that round).
    struct ReputationRecord {
        int64 score;
        uint32 provenRound;
        uint64 profileCodec;
        int64 provenScore;
    }

    /// @notice A node as returned by `nodeInfo()`. `reputation` is the node's score in the
    /// reputation table of finalized round `lastSettledRound`, as last proven on chain (the
    /// table on IPFS has the current score of every node); `mustProve`: the node needs a proof
    /// against the latest root to commit.
    struct NodeView {
        bool registered;
        bool active;
        address gateway;
        uint256 lastCommitRound;
        uint256 nextNonce;
        int64 reputation;
        uint256 lastSettledRound;
        Cid profile;
        bool mustProve;
    }

    /// @dev A validator votes in rounds [since, until] (until 0: open-ended). Granting the role
    /// during round r makes it eligible from r + 1 on; revoking it keeps the running round.
    struct ValidatorTerm {
        uint32 since;
        uint32 until;
    }

    /// @notice Reputation a node starts with.
    int64 public immutable initialReputation;
    /// @notice The bound voting contract (zero until the VOTING_ROLE grant).
    address public voting;

    mapping(address node => NodeRecord) internal _nodes;
    mapping(address account => ReputationRecord) internal _reputation;
    mapping(address node => bytes32) private _profileDigest;
    mapping(address gateway => uint256) internal _gatewayNodeCount;
    uint256 private _nodeCount;
    uint256 private _validatorCount;
    mapping(address validator => ValidatorTerm) private _terms;
    mapping(address gateway => bool) private _approvedGateway;
    mapping(address gateway => mapping(address node => bool)) private _consent;
    /// @dev When a node's deactivation or gateway last changed: a batch posted earlier is not
    /// the gateway's fault for that change.
    mapping(address node => uint256) internal _nodeChangedAt;

    constructor(address admin, int64 initialReputation_) {
        if (admin == address(0)) revert LedgerZeroAddress();
        initialReputation = initialReputation_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ----------------------------------------------------------------------------------------
    // Registration
    // ----------------------------------------------------------------------------------------

    /// @notice Registers one node.
    /// @param node The node's Ethereum address (the key that signs its commitments).
    /// @param profile CID of the node's hardware profile (or a bare hash with codec 0x55).
    /// @param gateway Account allowed to relay for the node, or zero for none.
    /// @dev Requirements: caller is admin; `node` is new and non-zero. Emits {NodeRegistered}.
    function registerNode(address node, Cid calldata profile, address gateway)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _register(node, profile, gateway);
    }

    /// @notice Registers many nodes behind one gateway in one transaction.
    /// @dev The loop is bounded by the caller's input, never by the registry size.
    /// Requirements: caller is admin; equal array lengths. Emits {NodeRegistered} per node.
    function registerNodes(address[] calldata nodes, Cid[] calldata profiles, address gateway)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (nodes.length != profiles.length) {
            revert LedgerLengthMismatch(nodes.length, profiles.length);
        }
        for (uint256 i = 0; i < nodes.length; ++i) {
            _register(nodes[i], profiles[i], gateway);
        }
    }

    /// @notice Stops a node from committing; its history and reputation stay.
    /// @dev Requirements: caller is admin; node registered and active. Emits {NodeDeactivated}.
    function deactivateNode(address node) external onlyRole(DEFAULT_ADMIN_ROLE) {
        NodeRecord memory n = _registered(node);
        if (n.flags & _FLAG_ACTIVE == 0) revert LedgerNodeInactive(node);
        _nodes[node].flags = n.flags & ~_FLAG_ACTIVE;
        _nodeChangedAt[node] = block.timestamp;
        emit NodeDeactivated(node);
    }

    /// @notice Lets a deactivated node commit again.
    /// @dev Requirements: caller is admin; node registered and inactive. Emits {NodeReactivated}.
    function reactivateNode(address node) external onlyRole(DEFAULT_ADMIN_ROLE) {
        NodeRecord memory n = _registered(node);
        if (n.flags & _FLAG_ACTIVE != 0) revert LedgerNodeAlreadyActive(node);
        _nodes[node].flags = n.flags | _FLAG_ACTIVE;
        emit NodeReactivated(node);
    }

    /// @notice Changes (or removes, with zero) the gateway allowed to relay for `node`.
    /// @dev Requirements: caller is admin or the node itself; a node may name only a gateway
    /// the admin approved or that consented to relay for it (the admin's choice is an
    /// approval). Emits {NodeGatewayChanged}.
    function setNodeGateway(address node, address gateway) external {
        bool isAdmin = hasRole(DEFAULT_ADMIN_ROLE, msg.sender);
        if (msg.sender != node && !isAdmin) revert LedgerUnauthorized(msg.sender);
        if (gateway != address(0) && !isAdmin && !_approvedGateway[gateway]
            && !_consent[gateway][node]) revert LedgerGatewayNotConsenting(node, gateway);
        NodeRecord memory n = _registered(node);
        address previous = n.gateway;
        _nodes[node].gateway = gateway;
        _nodeChangedAt[node] = block.timestamp;
        if (previous != address(0)) --_gatewayNodeCount[previous];
        if (gateway != address(0)) ++_gatewayNodeCount[gateway];
        emit NodeGatewayChanged(node, previous, gateway);
    }

    /// @notice Admin approves (or withdraws approval of) a gateway any node may name.
    /// @dev Emits {GatewayApproved}.
    function approveGateway(address gateway, bool approved) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (gateway == address(0)) revert LedgerZeroAddress();
        _approvedGateway[gateway] = approved;
        emit GatewayApproved(gateway, approved);
    }

    /// @notice The caller (a gateway) consents, or stops consenting, to relay for `node`.
    /// @dev Withdrawing consent does not unassign a node already behind the gateway.
    /// Emits {GatewayConsentChanged}.
    function consentToNode(address node, bool consent) external {
        _consent[msg.sender][node] = consent;
        emit GatewayConsentChanged(msg.sender, node, consent);
    }

    // ----------------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------------

    /// @notice Whether the admin approved `gateway` for self-assignment by any node.
    function isApprovedGateway(address gateway) external view returns (bool) {
        return _approvedGateway[gateway];
    }

    /// @notice The rounds `validator` may vote in: [since, until], until 0 meaning open-ended.
    function validatorTerm(address validator) external view returns (uint256 since, uint256 until) {
        ValidatorTerm memory t = _terms[validator];
        return (t.since, t.until);
    }

    /// @inheritdoc IChainMLLedger
    function isValidatorFor(uint256 roundId, address account) public view returns (bool) {
        ValidatorTerm memory t = _terms[account];
        return t.since != 0 && t.since <= roundId && (t.until == 0 || roundId <= t.until);
    }

    /// @notice Everything the registry knows about `node` (all zero if unknown).
    function nodeInfo(address account) external view returns (NodeView memory v) {
        NodeRecord memory n = _nodes[account];
        ReputationRecord memory r = _reputation[account];
        v = NodeView({
            registered: n.flags & _FLAG_REGISTERED != 0,
            active: n.flags & _FLAG_ACTIVE != 0,
            gateway: n.gateway,
            lastCommitRound: n.lastCommitRound,
            nextNonce: n.nextNonce,
            reputation: r.provenScore,
            lastSettledRound: r.provenRound,
            profile: Cid({digest: _profileDigest[account], codec: r.profileCodec}),
            mustProve: n.flags & _FLAG_MUST_PROVE != 0
        });
    }

    /// @notice On-chain reputation: a registered node's last proven table score (see
    /// {NodeView}); any other account's score from on-chain penalties (gateways, proposers,
    /// validators).
    function reputationOf(address account) external view returns (int64) {
        ReputationRecord storage r = _reputation[account];
        return _nodes[account].flags & _FLAG_REGISTERED != 0 ? r.provenScore : r.score;
    }

    /// @notice Number of registered nodes (active or not).
    function nodeCount() external view returns (uint256) {
        return _nodeCount;
    }

    /// @notice Number of registered nodes that name `gateway` as their relay.
    function gatewayNodeCount(address gateway) external view returns (uint256) {
        return _gatewayNodeCount[gateway];
    }

    /// @inheritdoc IChainMLLedger
    function validatorCount() public view returns (uint256) {
        return _validatorCount;
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _register(address node_, Cid calldata profile, address gateway) private {
        if (node_ == address(0)) revert LedgerZeroAddress();
        if (_nodes[node_].flags & _FLAG_REGISTERED != 0) revert LedgerNodeAlreadyRegistered(node_);
        _nodes[node_] = NodeRecord({
            gateway: gateway,
            lastCommitRound: 0,
            nextNonce: 0,
            flags: _FLAG_REGISTERED | _FLAG_ACTIVE
        });
        // Not in the latest table yet: its score there is the initial one.
        _reputation[node_] = ReputationRecord({
            score: 0,
            provenRound: uint32(_latestFinalizedRound()),
            profileCodec: profile.codec,
            provenScore: initialReputation
        });
        _profileDigest[node_] = profile.digest;
        if (gateway != address(0)) ++_gatewayNodeCount[gateway];
        ++_nodeCount;
        emit NodeRegistered(node_, gateway, profile.digest, profile.codec);
    }

    function _registered(address node_) internal view returns (NodeRecord memory n) {
        n = _nodes[node_];
        if (n.flags & _FLAG_REGISTERED == 0) revert LedgerNodeNotRegistered(node_);
    }

    function _isGateway(address account) internal view returns (bool) {
        return _gatewayNodeCount[account] != 0;
    }

    /// @dev Adds `delta` to `account`'s on-chain penalty score (a role's, never a node's table
    /// reputation), saturating at the int64 bounds.
    function _changeReputation(address account, uint256 round, int64 delta, ReputationReason why)
        internal
        returns (int64 score)
    {
        int256 next = int256(_reputation[account].score) + delta;
        if (next > type(int64).max) next = type(int64).max;
        if (next < type(int64).min) next = type(int64).min;
        score = int64(next);
        _reputation[account].score = score;
        emit ReputationChanged(account, round, why, delta, score);
    }

    /// @dev The id of the latest round (0 before any), from the ledger.
    function _latestRound() internal view virtual returns (uint256);

    /// @dev The id of the latest finalized round (0 before any), from the ledger.
    function _latestFinalizedRound() internal view virtual returns (uint256);

    /// @dev Keeps `_validatorCount` exact (a round snapshots it when it opens) and each
    /// validator's term; binds the voting contract on the one VOTING_ROLE grant.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        if (role == VOTING_ROLE) {
            if (voting != address(0)) revert LedgerVotingRoleLocked(account);
            if (account == address(0)) revert LedgerZeroAddress();
            voting = account;
        }
        granted = super._grantRole(role, account);
        if (granted && role == VALIDATOR_ROLE) {
            ++_validatorCount;
            uint256 since = _latestRound() + 1;
            _terms[account] = ValidatorTerm(uint32(since), 0);
            emit ValidatorTermChanged(account, since, 0);
        }
    }

    /// @dev See {_grantRole}. A revoked validator keeps its vote in the round that is running
    /// (it was part of that round's snapshot) and none after.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        if (role == VOTING_ROLE) revert LedgerVotingRoleLocked(account);
        revoked = super._revokeRole(role, account);
        if (revoked && role == VALIDATOR_ROLE) {
            --_validatorCount;
            uint256 until = _latestRound();
            ValidatorTerm memory t = _terms[account];
            if (until < t.since) {
                delete _terms[account];
                emit ValidatorTermChanged(account, 0, 0);
            } else {
                _terms[account].until = uint32(until);
                emit ValidatorTermChanged(account, t.since, until);
            }
        }
    }
}
