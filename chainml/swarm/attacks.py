"""Adversarial nodes for the fault-injection suite: what each attack does to a node's round.

Which nodes are adversaries is seeded (``adversary_indices``), so a resumed or repeated run
has the same attackers. Every attack is applied where a real attacker would act:

- ``sign_flip``, ``scale``, ``noise``: the node tampers with its update before storing it;
- ``label_flip``: the node trains on poisoned local data (labels flipped or negated);
- ``freeride``: the node sends an all-zero update (no work, claims the reward);
- ``stale``: the node commits against an older base version than the round's;
- ``replay``: the node re-signs its commitment for the previous round (an old commitment);
- ``sybil``: one operator runs many keys that all submit the same poisoned update;
- ``bad_aggregator``: not a node attack; the aggregator proposes tampered weights.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from chainml.meta.models import get_model
from chainml.meta.sparse import SparseUpdate
from chainml.meta.tasks import Episode, Task
from chainml.meta.tasks.base import task_rng

ATTACKS = (
    "sign_flip",
    "scale",
    "noise",
    "label_flip",
    "stale",
    "freeride",
    "replay",
    "sybil",
    "bad_aggregator",
)
NODE_ATTACKS = frozenset(ATTACKS) - {"bad_aggregator"}
SCALE_FACTOR = 20.0
"""``scale`` boosts its update 20x: large enough to drag a mean far off, as in the literature."""
NOISE_FACTOR = 50.0
"""``noise`` sends uniform random int8 values at 50x the honest scale (a Gaussian-noise attack
with a large variance, in int8 form)."""


def adversary_indices(nodes: int, fraction: float, seed: int) -> frozenset[int]:
    """The seeded set of adversarial node indices (``round(fraction * nodes)`` of them)."""
    count = round(fraction * nodes)
    if count == 0:
        return frozenset()
    rng = task_rng(seed, 11)
    return frozenset(int(i) for i in rng.choice(nodes, size=count, replace=False))


def poison_update(
    attack: str, update: SparseUpdate, seed: int, round_id: int, index: int
) -> SparseUpdate:
    """The update an attacker sends instead of its honest one."""
    if attack == "sign_flip":
        return replace(update, values=(-update.values.astype(np.int16)).astype(np.int8))
    if attack in ("scale", "sybil"):
        return replace(update, scales=(update.scales * np.float32(SCALE_FACTOR)).astype(np.float32))
    if attack == "noise":
        rng = task_rng(seed, 12, round_id, index)
        values = rng.integers(-127, 128, size=update.values.shape).astype(np.int8)
        return replace(
            update,
            values=values,
            scales=(update.scales * np.float32(NOISE_FACTOR)).astype(np.float32),
        )
    if attack == "freeride":
        return replace(update, values=np.zeros_like(update.values))
    return update


class LabelFlippedTask(Task):
    """A task whose local data is poisoned: regression targets negated, class labels reversed."""

    def __init__(self, inner: Task) -> None:
        super().__init__(inner.family, inner.seed, inner.index, inner.split)
        self.inner = inner

    def episode(self, shots: int, queries: int, draw: int = 0) -> Episode:
        ep = self.inner.episode(shots, queries, draw)
        if self.inner.kind == "regression":
            return Episode(ep.x_support, -ep.y_support, ep.x_query, ep.y_query)
        classes = get_model(self.inner.family.default_arch).spec.output_dim
        return Episode(ep.x_support, (classes - 1) - ep.y_support, ep.x_query, ep.y_query)
