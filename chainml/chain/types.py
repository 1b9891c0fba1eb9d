"""Plain value types shared by the chain bindings, the deploy function and the swarm."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

OnchainCid = tuple[bytes, int]
"""A CID as the contracts store it: (sha2-256 digest, multicodec); see chainml.storage.cid."""

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
ZERO32 = b"\x00" * 32
NO_CID: OnchainCid = (ZERO32, 0)


def cid_abi(cid: OnchainCid | None) -> tuple[bytes, int]:
    """The web3 tuple for a Solidity ``Cid``; None becomes the all-zero CID."""
    if cid is None:
        return NO_CID
    digest, codec = cid
    if len(digest) != 32:
        raise ValueError(f"a CID digest must be 32 bytes, got {len(digest)}")
    return (bytes(digest), int(codec))


class RoundStatus(IntEnum):
    NONE = 0
    OPEN = 1
    AGGREGATING = 2
    FINALIZED = 3
    CLOSED = 4


class ProposalStatus(IntEnum):
    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    REJECTED = 3


class VoteState(IntEnum):
    NONE = 0
    COMMITTED = 1
    REVEALED = 2
    FORFEITED = 3


class FaultReason(IntEnum):
    NONE = 0
    INVALID_SIGNATURE = 1
    WRONG_ROUND = 2
    STALE_BASE_VERSION = 3
    NODE_NOT_ALLOWED = 4
    ALREADY_COMMITTED = 5
    REPUTATION_TOO_LOW = 6


DEFAULT_GATEWAY_BOND_WEI = 10**17
"""0.1 ether: what a gateway stakes per batch it may be slashed for."""
DEFAULT_MIN_REPUTATION = 700
"""The inclusion gate; the same threshold validators apply off chain
(``chainml.protocol.recompute.MIN_REPUTATION``)."""


@dataclass(frozen=True)
class SecurityParams:
    """The ledger's security parameters: set at deployment, changed only by the admin through
    the params contract's timelock, within bounds the contract enforces (periods 60 s to 30
    days, quorum a strict majority, 1 to 8 proposals per round, a non-zero bond and reward).
    Every round snapshots them when it opens; the aggregator never chooses them."""

    commit_period: int = 3_600
    min_commitments: int = 1
    quorum_bps: int = 6_600  # 2 of 3, 5 of 7 validators
    challenge_window: int = 600
    vote_commit_period: int = 600
    reveal_period: int = 600
    max_proposals: int = 2
    gateway_bond: int = DEFAULT_GATEWAY_BOND_WEI
    challenger_reward_bps: int = 5_000
    min_reputation: int = DEFAULT_MIN_REPUTATION

    def as_abi(self) -> tuple[int, ...]:
        return (
            self.commit_period,
            self.min_commitments,
            self.quorum_bps,
            self.challenge_window,
            self.vote_commit_period,
            self.reveal_period,
            self.max_proposals,
            self.gateway_bond,
            self.challenger_reward_bps,
            self.min_reputation,
        )

    @classmethod
    def from_abi(cls, value: Any) -> SecurityParams:
        return cls(*(int(v) for v in value))


@dataclass(frozen=True)
class ReputationParams:
    initial: int = 1_000
    inclusion_reward: int = 10
    exclusion_penalty: int = 50
    proposer_penalty: int = 100
    gateway_penalty: int = 100

    def as_abi(self) -> tuple[int, ...]:
        return (
            self.initial,
            self.inclusion_reward,
            self.exclusion_penalty,
            self.proposer_penalty,
            self.gateway_penalty,
        )


@dataclass(frozen=True)
class Proposal:
    """An aggregation proposal: the aggregate, the voted-on included/excluded node lists and
    the reputation table they lead to.

    The lists are Merkle roots over node addresses (``merkle.address_leaf``) with the full lists
    on IPFS; ``rule_id`` names the aggregation rule (the aggregation package defines the ids).
    """

    round: int
    aggregate: OnchainCid
    included_root: bytes
    included_count: int
    excluded_root: bytes = ZERO32
    excluded_count: int = 0
    metrics: OnchainCid | None = None
    included_list: OnchainCid | None = None
    excluded_list: OnchainCid | None = None
    rule_id: int = 0
    parent_reputation_root: bytes = ZERO32
    """The ledger's latest reputation root, which this round's table builds on."""
    reputation_root: bytes = ZERO32
    """Root of every registered node's reputation after this round (``merkle.reputation_leaf``);
    the table itself is on IPFS at ``reputation_table``."""
    reputation_table: OnchainCid | None = None
    gated_count: int = 0
    """Nodes this round puts below the initial reputation (each must be proven on chain)."""

    def as_abi(self) -> tuple[Any, ...]:
        return (
            self.round,
            cid_abi(self.aggregate),
            cid_abi(self.metrics),
            self.included_root,
            self.included_count,
            cid_abi(self.included_list),
            self.excluded_root,
            self.excluded_count,
            cid_abi(self.excluded_list),
            self.rule_id,
            self.parent_reputation_root,
            self.reputation_root,
            cid_abi(self.reputation_table),
            self.gated_count,
        )
