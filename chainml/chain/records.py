"""Typed records of what the chain holds: the contracts' views and events as dataclasses.

One decoder (:func:`decode`) turns web3's values into these records, field by field from the
ABI: ``camelCase`` names become ``snake_case`` fields, a Solidity ``Cid`` struct becomes an
``OnchainCid`` ``(digest, codec)`` pair (so do an event's ``xDigest`` + ``xCodec`` arguments,
as field ``x``), enums become their ``IntEnum``, addresses checksummed strings, fixed bytes
``bytes``, nested structs their record. ``tests/foundation/test_records.py`` checks every record
against the compiled ABI, so a contract change a record does not follow fails a test, not a run.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from typing import Any, ClassVar, TypeVar

from eth_utils import to_checksum_address

from chainml.chain.artifacts import LEDGER, PARAMS, VOTING
from chainml.chain.types import (
    FaultReason,
    OnchainCid,
    Proposal,
    ProposalStatus,
    RoundStatus,
    SecurityParams,
    VoteState,
)

R = TypeVar("R")


class ReputationReason(IntEnum):
    """Why an account's on-chain (penalty) reputation changed."""

    INCLUDED = 0
    EXCLUDED = 1
    PROPOSAL_REJECTED = 2
    GATEWAY_FAULT = 3


# -- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    """``version(id)``: one version of the meta-weights."""

    weights: OnchainCid
    metrics: OnchainCid
    parent: int
    round: int
    timestamp: int


@dataclass(frozen=True)
class RoundInfo:
    """``round(id)``: a round with the security parameters it snapshotted when it opened."""

    status: RoundStatus
    base_version: int
    commit_deadline: int
    min_commitments: int
    commit_count: int
    quorum_bps: int
    challenge_window: int
    challenge_end: int
    vote_commit_period: int
    reveal_period: int
    batch_count: int
    produced_version: int
    included_root: bytes
    excluded_root: bytes
    validator_count: int
    proposal_count: int
    max_proposals: int
    min_reputation: int
    included_count: int
    excluded_count: int
    settled_count: int
    proposal_pending: bool
    gated_count: int


@dataclass(frozen=True)
class NodeInfo:
    """``nodeInfo(address)``: a node's registry entry (``reputation`` is the last score proven
    on chain, or the current one from the latest reputation table where a caller says so)."""

    registered: bool
    active: bool
    gateway: str
    last_commit_round: int
    next_nonce: int
    reputation: int
    last_settled_round: int
    profile: OnchainCid
    must_prove: bool


@dataclass(frozen=True)
class BatchInfo:
    """``batch(id)``: a posted Merkle batch."""

    round: int
    gateway: str
    root: bytes
    leaves: OnchainCid
    leaf_count: int
    voided_count: int
    challenge_deadline: int


@dataclass(frozen=True)
class ProposalInfo:
    """``proposal(id)``: a proposal and its vote."""

    status: ProposalStatus
    proposer: str
    round: int
    validator_count: int
    required: int
    committed_votes: int
    yes: int
    no: int
    commit_deadline: int
    reveal_deadline: int
    commit_phase_over: bool
    aggregate: OnchainCid
    metrics: OnchainCid
    included_root: bytes
    excluded_root: bytes
    included_count: int
    excluded_count: int
    rule_id: int
    reputation_root: bytes
    gated_count: int


@dataclass(frozen=True)
class VoteInfo:
    """``voteOf(proposal, validator)``."""

    state: VoteState
    approve: bool
    commitment: bytes


@dataclass(frozen=True)
class RoundParams:
    """The parameters a round snapshotted (in ``RoundOpened``)."""

    commit_period: int
    min_commitments: int
    quorum_bps: int
    challenge_window: int
    vote_commit_period: int
    reveal_period: int


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """Where an event was logged; subclasses name their contract and carry the arguments."""

    block: int
    log_index: int
    tx: str
    contract: ClassVar[str] = LEDGER

    @property
    def position(self) -> tuple[int, int]:
        """Chain order."""
        return (self.block, self.log_index)


@dataclass(frozen=True, kw_only=True)
class CommitmentAccepted(EventRecord):
    """A direct or relayed commitment (losses in 9-decimal fixed point, as signed)."""

    round: int
    node: str
    update: OnchainCid
    num_samples: int
    loss_before: int
    loss_after: int


@dataclass(frozen=True, kw_only=True)
class CommitmentSkipped(EventRecord):
    round: int
    node: str
    reason: FaultReason


@dataclass(frozen=True, kw_only=True)
class BatchPosted(EventRecord):
    batch_id: int
    round: int
    gateway: str
    root: bytes
    leaf_count: int
    leaves: OnchainCid
    challenge_deadline: int


@dataclass(frozen=True, kw_only=True)
class LeafVoided(EventRecord):
    batch_id: int
    leaf: bytes
    node: str
    reason: FaultReason
    challenger: str


@dataclass(frozen=True, kw_only=True)
class RoundOpened(EventRecord):
    round: int
    base_version: int
    commit_deadline: int
    params: RoundParams


@dataclass(frozen=True, kw_only=True)
class RoundFinalized(EventRecord):
    round: int
    version: int
    included_root: bytes
    excluded_root: bytes
    reputation_root: bytes
    gated_count: int


@dataclass(frozen=True, kw_only=True)
class ArtifactRecorded(EventRecord):
    """An artifact (e.g. an MCU export) built from ``version`` for a device target."""

    version: int
    cid: OnchainCid
    target: bytes
    recorder: str

    @property
    def target_name(self) -> str:
        """The target as text (UTF-8, zero-padded to 32 bytes on chain)."""
        return self.target.rstrip(b"\0").decode("utf-8", "replace")


@dataclass(frozen=True, kw_only=True)
class NodeRegistered(EventRecord):
    node: str
    gateway: str
    profile: OnchainCid


@dataclass(frozen=True, kw_only=True)
class NodeDeactivated(EventRecord):
    node: str


@dataclass(frozen=True, kw_only=True)
class NodeReactivated(EventRecord):
    node: str


@dataclass(frozen=True, kw_only=True)
class NodeGatewayChanged(EventRecord):
    node: str
    previous: str
    gateway: str


@dataclass(frozen=True, kw_only=True)
class ReputationChanged(EventRecord):
    account: str
    round: int
    reason: ReputationReason
    delta: int
    score: int


@dataclass(frozen=True, kw_only=True)
class ProposalSubmitted(EventRecord):
    """A proposal's full input (list and table CIDs included), as the aggregator sent it."""

    contract: ClassVar[str] = VOTING
    proposal_id: int
    round: int
    proposer: str
    proposal: Proposal
    validator_count: int
    commit_deadline: int
    reveal_deadline: int


@dataclass(frozen=True, kw_only=True)
class ProposalAccepted(EventRecord):
    contract: ClassVar[str] = VOTING
    proposal_id: int
    round: int
    version: int
    yes: int
    no: int


REGISTRY_EVENTS: tuple[type[EventRecord], ...] = (
    NodeRegistered,
    NodeDeactivated,
    NodeReactivated,
    NodeGatewayChanged,
)
EVENT_RECORDS: tuple[type[EventRecord], ...] = (
    CommitmentAccepted,
    CommitmentSkipped,
    BatchPosted,
    LeafVoided,
    RoundOpened,
    RoundFinalized,
    ArtifactRecorded,
    *REGISTRY_EVENTS,
    ReputationChanged,
    ProposalSubmitted,
    ProposalAccepted,
)
VIEW_RECORDS: dict[type, tuple[str, str]] = {
    VersionInfo: (LEDGER, "version"),
    RoundInfo: (LEDGER, "round"),
    NodeInfo: (LEDGER, "nodeInfo"),
    BatchInfo: (LEDGER, "batch"),
    ProposalInfo: (VOTING, "proposal"),
    VoteInfo: (VOTING, "voteOf"),
    SecurityParams: (PARAMS, "current"),
}
"""Each view record and the (contract, function) whose output it is."""


# -- decoding ---------------------------------------------------------------------------------


def snake(name: str) -> str:
    """``leavesDigest`` -> ``leaves_digest``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@cache
def _fields(cls: type) -> dict[str, Any]:
    """A record's ABI-facing fields and their types (position fields excluded)."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if f.name not in ("block", "log_index", "tx")
    }


def _is_cid(param: dict[str, Any]) -> bool:
    return param["type"] == "tuple" and [c["name"] for c in param["components"]] == [
        "digest",
        "codec",
    ]


def field_sources(cls: type, params: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which ABI parameters each field of ``cls`` is read from: its own name, or a
    ``xDigest`` + ``xCodec`` pair (``digest`` + ``codec`` for a field named ``cid``)."""
    names = {p["name"] for p in params}
    out: dict[str, list[str]] = {}
    for field_name in _fields(cls):
        parts = field_name.split("_")
        camel = parts[0] + "".join(p.title() for p in parts[1:])
        if camel in names:
            out[field_name] = [camel]
        elif field_name == "cid":
            out[field_name] = ["digest", "codec"]
        else:
            out[field_name] = [f"{camel}Digest", f"{camel}Codec"]
    return out


def decode(cls: type[R], params: list[dict[str, Any]], values: Any, **position: Any) -> R:
    """The record ``cls`` of ABI ``params`` with ``values`` (web3's tuple or mapping)."""
    by_name = {p["name"]: p for p in params}
    raw = (
        dict(values)
        if hasattr(values, "keys")
        else {p["name"]: v for p, v in zip(params, values, strict=True)}
    )
    kwargs = dict(position)
    hints = _fields(cls)
    for field_name, sources in field_sources(cls, params).items():
        if len(sources) == 2:
            kwargs[field_name] = (bytes(raw[sources[0]]), int(raw[sources[1]]))
        else:
            kwargs[field_name] = _value(by_name[sources[0]], raw[sources[0]], hints[field_name])
    return cls(**kwargs)


def _value(param: dict[str, Any], value: Any, hint: Any) -> Any:
    kind = param["type"]
    if _is_cid(param):
        return (bytes(_get(value, "digest", 0)), int(_get(value, "codec", 1)))
    if kind == "tuple":
        return decode(hint, param["components"], value)
    if kind == "address":
        return to_checksum_address(value)
    if kind.startswith("bytes"):
        return bytes(value)
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return hint(int(value))
    if kind == "bool":
        return bool(value)
    return int(value) if kind.startswith(("uint", "int")) else value


def _get(value: Any, name: str, index: int) -> Any:
    return value[name] if hasattr(value, "keys") else value[index]
