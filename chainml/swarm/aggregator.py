"""The swarm's aggregators: the honest actor (``chainml.actors.aggregator``) and the bad
aggregator of the fault-injection suite, a wrapper around it.

The wrapper changes what the honest actor would publish (other weights than the rule produces,
or another metrics file than the round's) and nothing else, so the honest code path has no
attack branch in it and validators are tested against exactly what a dishonest party could send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from chainml.actors.aggregator import Aggregator
from chainml.protocol.evidence import RoundEvidence
from chainml.protocol.recompute import AggregateOutcome
from chainml.protocol.round_metrics import RoundMetrics
from chainml.storage.cid import cid_str
from chainml.storage.unixfs import file_cid

__all__ = ["Aggregator", "TamperingAggregator", "flatter_losses", "flip_last_bit"]

Forgery = Callable[[bytes], bytes]


def flip_last_bit(weights: bytes) -> bytes:
    """The real weights with one bit flipped: the smallest lie a validator must catch."""
    return weights[:-1] + bytes([weights[-1] ^ 0x01])


def flatter_losses(metrics: bytes) -> bytes:
    """The round's real metrics file claiming the nodes' adaptation cut their loss twice as much
    as they reported: a well-formed file that only recomputing it shows to be false."""
    real = RoundMetrics.decode(metrics)
    flattered = dataclasses.replace(real, reported_loss_after=real.reported_loss_after / 2)
    return flattered.encode()


class TamperingAggregator:
    """An aggregator that publishes a forgery in its first proposal of each round (or in every
    proposal with ``every_proposal``): ``tamper(weights)`` instead of the rule's aggregate
    (None: the real aggregate) and ``forge_metrics(file)`` instead of the round's metrics file
    (None: the real file of what it proposes); everything else is the honest actor's."""

    _OWN = frozenset({"inner", "tamper", "every_proposal", "forge_metrics"})

    def __init__(
        self,
        inner: Aggregator,
        tamper: Forgery | None = flip_last_bit,
        every_proposal: bool = False,
        forge_metrics: Forgery | None = None,
    ) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "tamper", tamper)
        object.__setattr__(self, "every_proposal", every_proposal)
        object.__setattr__(self, "forge_metrics", forge_metrics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The harness (and tests) swap the honest actor's store or strategy through here.
        setattr(self.inner if name not in self._OWN else super(), name, value)

    def propose(
        self,
        round_id: int,
        evidence: RoundEvidence,
        outcome: AggregateOutcome,
        metrics: bytes | None = None,
    ) -> int:
        inner = self.inner
        if not self.every_proposal and inner.ledger.proposals(round_id, inner.from_block):
            return inner.propose(round_id, evidence, outcome, metrics)
        if self.tamper is not None:
            weights = self.tamper(outcome.weights)
            outcome = dataclasses.replace(
                outcome, weights=weights, weights_cid=cid_str(file_cid(weights))
            )
        if self.forge_metrics is not None:
            real = metrics if metrics is not None else RoundMetrics.of(evidence, outcome).encode()
            metrics = self.forge_metrics(real)
        return inner.propose(round_id, evidence, outcome, metrics)
