"""The swarm's aggregators: the honest actor (``chainml.actors.aggregator``) and the bad
aggregator of the fault-injection suite, a wrapper around it.

The wrapper changes what the honest actor would publish (other weights than the rule produces)
and nothing else, so the honest code path has no attack branch in it and validators are tested
against exactly what a dishonest party could send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from chainml.actors.aggregator import Aggregator, MetricsFn, basic_metrics
from chainml.protocol.evidence import RoundEvidence
from chainml.protocol.recompute import AggregateOutcome
from chainml.storage.cid import cid_str
from chainml.storage.unixfs import file_cid

__all__ = ["Aggregator", "MetricsFn", "TamperingAggregator", "basic_metrics", "flip_last_bit"]


def flip_last_bit(weights: bytes) -> bytes:
    """The real weights with one bit flipped: the smallest lie a validator must catch."""
    return weights[:-1] + bytes([weights[-1] ^ 0x01])


class TamperingAggregator:
    """An aggregator that publishes ``tamper(weights)`` instead of the rule's aggregate, in its
    first proposal of each round (or every proposal with ``every_proposal``); everything else
    is the honest actor's."""

    _OWN = frozenset({"inner", "tamper", "every_proposal"})

    def __init__(
        self,
        inner: Aggregator,
        tamper: Callable[[bytes], bytes] = flip_last_bit,
        every_proposal: bool = False,
    ) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "tamper", tamper)
        object.__setattr__(self, "every_proposal", every_proposal)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The harness (and tests) swap the honest actor's store or strategy through here.
        setattr(self.inner if name not in self._OWN else super(), name, value)

    def propose(
        self, round_id: int, evidence: RoundEvidence, outcome: AggregateOutcome, metrics: bytes
    ) -> int:
        inner = self.inner
        if not self.every_proposal and inner.ledger.proposals(round_id, inner.from_block):
            return inner.propose(round_id, evidence, outcome, metrics)
        weights = self.tamper(outcome.weights)
        forged = dataclasses.replace(
            outcome, weights=weights, weights_cid=cid_str(file_cid(weights))
        )
        return inner.propose(round_id, evidence, forged, metrics)
