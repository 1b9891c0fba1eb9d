"""The metrics file a proposal names: what its round did, recomputed by every validator.

The file is a pure function of the round's evidence and its recomputed outcome (chain and IPFS
data alone), so the aggregator cannot choose its content: validators recompute it and vote no
unless the proposal names exactly its CID (byte for byte, like the aggregate), and ``chainml
verify`` checks it for every version. It holds only what is cheap and deterministic::

    {"format": "chainml.round-metrics.v1", "round": r, "base_version": v, "base_weights": CID,
     "weights": CID, "aggregation": "guard", "rule_id": 6, "committed": n, "included": n,
     "excluded": n, "invalid": n, "rejected_leaves": n, "samples": n,
     "reported_loss": {"before": x, "after": y}}

with sorted keys and no whitespace (``canonical_json``). ``invalid`` counts the nodes whose
update could not be used (they are among the excluded), ``rejected_leaves`` the batch leaves
dropped before aggregation, ``samples`` the included nodes' committed sample counts, and
``reported_loss`` the mean of the query losses the committed nodes signed (before and after
their own adaptation): what they claimed, not a held-out measurement. Held-out learning curves
and device costs are not here: they are observations anyone can make from the version's
weights, and the swarm harness makes them in its run directory.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from functools import cached_property
from statistics import fmean
from typing import TYPE_CHECKING, Any

from chainml.chain.types import NO_CID, Proposal
from chainml.errors import IntegrityError, StorageError
from chainml.protocol.codecs import canonical_json, parse_json
from chainml.storage.cid import cid_str, onchain_to_str, to_cid_bytes
from chainml.storage.store import Store, stored_problem
from chainml.storage.unixfs import file_cid

if TYPE_CHECKING:
    from chainml.protocol.evidence import RoundEvidence
    from chainml.protocol.recompute import AggregateOutcome

METRICS_FORMAT = "chainml.round-metrics.v1"
MAX_METRICS_BYTES = 4096
"""A metrics file is a few hundred bytes; anything past this is refused before parsing."""
_MAX_COUNT = 2**32
_MAX_NAME = 32


@dataclass(frozen=True)
class RoundMetrics:
    """One round's metrics file (see the module docstring for its JSON)."""

    round: int
    base_version: int
    base_weights: str
    weights: str
    """The aggregate's CID: the file names the version it describes."""
    aggregation: str
    rule_id: int
    committed: int
    included: int
    excluded: int
    invalid: int
    rejected_leaves: int
    samples: int
    reported_loss_before: float
    reported_loss_after: float

    @classmethod
    def of(cls, evidence: RoundEvidence, outcome: AggregateOutcome) -> RoundMetrics:
        """The metrics of a round's recomputed outcome (what every validator expects)."""
        updates = evidence.updates
        included = {n.lower() for n in outcome.included}
        return cls(
            round=evidence.round,
            base_version=evidence.base_version,
            base_weights=evidence.base_weights_cid,
            weights=outcome.weights_cid,
            aggregation=outcome.recipe.aggregation,
            rule_id=outcome.rule_id,
            committed=len(updates),
            included=len(outcome.included),
            excluded=len(outcome.excluded),
            invalid=len(outcome.invalid),
            rejected_leaves=len(evidence.rejected),
            samples=sum(u.num_samples for u in updates if u.node.lower() in included),
            reported_loss_before=fmean(u.loss_before for u in updates) if updates else 0.0,
            reported_loss_after=fmean(u.loss_after for u in updates) if updates else 0.0,
        )

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"format": METRICS_FORMAT}
        for f in fields(self):
            if not f.name.startswith("reported_loss_"):
                body[f.name] = getattr(self, f.name)
        body["reported_loss"] = {
            "before": self.reported_loss_before,
            "after": self.reported_loss_after,
        }
        return body

    def encode(self) -> bytes:
        return canonical_json(self.as_json())

    @cached_property
    def cid(self) -> str:
        """The file's CID (what ``store.put(self.encode())`` returns)."""
        return cid_str(file_cid(self.encode()))

    def differences(self, other: RoundMetrics) -> list[str]:
        """The fields in which ``other`` differs from this file."""
        names = [f.name for f in fields(self)]
        return [n for n, a, b in zip(names, astuple(self), astuple(other), strict=True) if a != b]

    @classmethod
    def decode(cls, data: bytes) -> RoundMetrics:
        """Parse a metrics file from an adversary: oversized, invalid or deeply nested JSON,
        huge numbers, a missing, extra or mistyped field, a value out of range or a
        non-canonical encoding are each a one-line ``IntegrityError``."""
        if len(data) > MAX_METRICS_BYTES:
            raise IntegrityError(
                f"metrics file is {len(data)} bytes, over the {MAX_METRICS_BYTES}-byte limit"
            )
        raw = parse_json(data, "metrics file")
        if not isinstance(raw, dict) or raw.get("format") != METRICS_FORMAT:
            raise IntegrityError(f"not a chainml metrics file (format {METRICS_FORMAT})")
        loss = raw.get("reported_loss")
        if not isinstance(loss, dict):
            raise IntegrityError("malformed metrics file: 'reported_loss' must be an object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name.startswith("reported_loss_"):
                key = f.name.removeprefix("reported_loss_")
                values[f.name] = _loss(loss.get(key), f"reported_loss.{key}")
            elif f.name in ("base_weights", "weights"):
                values[f.name] = _cid(raw.get(f.name), f.name)
            elif f.name == "aggregation":
                values[f.name] = _name(raw.get(f.name), f.name)
            else:
                values[f.name] = _count(raw.get(f.name), f.name)
        metrics = cls(**values)
        if metrics.round < 1:
            raise IntegrityError(
                f"malformed metrics file: 'round' must be >= 1, got {metrics.round}"
            )
        if metrics.encode() != data:
            raise IntegrityError("metrics file is not in canonical form (or has unknown fields)")
        return metrics


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise IntegrityError(
            f"malformed metrics file: {name!r} must be a whole number in [0, {_MAX_COUNT}), "
            f"got {_short(value)}"
        )
    return value


def _loss(value: Any, name: str) -> float:
    number = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer past float's range
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise IntegrityError(
            f"malformed metrics file: {name!r} must be a finite non-negative number, "
            f"got {_short(value)}"
        )
    return number


def _cid(value: Any, name: str) -> str:
    try:
        if isinstance(value, str) and cid_str(to_cid_bytes(value)) == value:
            return value
    except (StorageError, ValueError, TypeError):
        pass
    raise IntegrityError(f"malformed metrics file: {name!r} must be a CID, got {_short(value)}")


def _name(value: Any, name: str) -> str:
    if isinstance(value, str) and 0 < len(value) <= _MAX_NAME and value.isascii():
        return value
    raise IntegrityError(
        f"malformed metrics file: {name!r} must be a rule name (1-{_MAX_NAME} ASCII "
        f"characters), got {_short(value)}"
    )


def _short(value: Any) -> str:
    """A hostile value, shown in one short line."""
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def proposed_metrics_cid(proposal: Proposal) -> str | None:
    digest, codec = proposal.metrics or NO_CID
    return onchain_to_str(digest, codec) if any(digest) else None


def check_metrics(store: Store, metrics: RoundMetrics, proposal: Proposal) -> str | None:
    """Why a proposal's metrics file is not the recomputed one (None if it names exactly the
    recomputed file and the store holds it with those bytes). Never fetches what the proposal
    names otherwise: a no vote needs no more, and a hostile CID costs nothing."""
    proposed = proposed_metrics_cid(proposal)
    if proposed != metrics.cid:
        return f"metrics file differs: recomputed {metrics.cid}, proposed {proposed}"
    return stored_problem(store, "metrics file", metrics.cid, metrics.encode())


def explain_metrics(expected: RoundMetrics, data: bytes) -> str:
    """What is wrong with a recorded metrics file's bytes, in one line."""
    try:
        recorded = RoundMetrics.decode(data)
    except IntegrityError as exc:
        return str(exc)
    diff = expected.differences(recorded)
    return "its " + ", ".join(diff) + " differ" if diff else "same fields, other bytes"
