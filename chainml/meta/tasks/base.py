"""What a task family and a task are: seeded, pure data sources (one simulated node = one task).

A family maps ``(seed, index, split)`` to a task; a task maps ``(shots, queries, draw)`` to an
episode. Both mappings depend only on their arguments (numpy ``SeedSequence`` derived streams, no
global state), so any process can rebuild the exact data a node saw in any round: ``draw`` is the
node's local data stream position (the swarm uses the round number).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from chainml.errors import MetaLearningError

Split = Literal["train", "eval"]
Kind = Literal["regression", "classification"]

_SPLIT_CODE = {"train": 0, "eval": 1}


@dataclass(frozen=True)
class Episode:
    """Support (adaptation) and query (scoring) samples; may carry a leading task dimension."""

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor


def stack_episodes(episodes: Sequence[Episode]) -> Episode:
    """Stack episodes of equal shapes along a new leading task dimension (for ``vmap``)."""
    if not episodes:
        raise MetaLearningError("cannot stack zero episodes")
    return Episode(
        *(torch.stack([getattr(e, f) for e in episodes]) for f in Episode.__dataclass_fields__)
    )


def task_rng(*entropy: int) -> np.random.Generator:
    """A numpy generator seeded from integer entropy (order-sensitive, collision-resistant)."""
    if any(int(e) < 0 for e in entropy):
        raise MetaLearningError(f"seeds and indices must be non-negative, got {entropy}")
    return np.random.default_rng(np.random.SeedSequence([int(e) for e in entropy]))


class Task:
    """One node's local data distribution, with its own seeded sample stream.

    Subclasses implement :meth:`sample` (regression) or :meth:`sample_class` (classification).
    """

    def __init__(self, family: TaskFamily, seed: int, index: int, split: Split) -> None:
        self.family = family
        self.seed = seed
        self.index = index
        self.split = split

    @property
    def kind(self) -> Kind:
        return self.family.kind

    def stream(self, draw: int) -> np.random.Generator:
        """The generator for draw ``draw`` of this task's local data stream."""
        return task_rng(self.seed, _SPLIT_CODE[self.split], self.index, 1, draw)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` regression samples ``(x, y)``; classification tasks use :meth:`sample_class`."""
        raise MetaLearningError(f"{type(self).__name__} has no regression sampler")

    def sample_class(self, rng: np.random.Generator, label: int, n: int) -> np.ndarray:
        """``n`` inputs of class ``label`` (classification tasks only)."""
        raise MetaLearningError(f"{type(self).__name__} has no class sampler")

    def episode(self, shots: int, queries: int, draw: int = 0) -> Episode:
        """Support/query samples from draw ``draw``.

        Regression: ``shots`` support and ``queries`` query points in total.
        Classification: ``shots`` and ``queries`` *per class* (N-way K-shot), interleaved in a
        seeded order so that online one-sample-at-a-time learners see mixed classes.
        """
        if shots < 1 or queries < 1:
            raise MetaLearningError(f"need shots>=1 and queries>=1, got {shots}, {queries}")
        rng = self.stream(draw)
        if self.kind == "regression":
            xs, ys = self.sample(rng, shots)
            xq, yq = self.sample(rng, queries)
            return Episode(_f32(xs), _f32(ys), _f32(xq), _f32(yq))
        parts = []
        for n in (shots, queries):
            xs_list = [self.sample_class(rng, c, n) for c in range(self.family.n_way)]
            x = np.concatenate(xs_list)
            y = np.repeat(np.arange(self.family.n_way), n)
            order = rng.permutation(len(y))
            parts += [_f32(x[order]), torch.from_numpy(y[order].astype(np.int64))]
        return Episode(*parts)


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class TaskFamily(ABC):
    """A distribution over tasks. ``task(seed, i, "train")`` and ``task(seed, j, "eval")`` are
    drawn from disjoint seed streams (and, for finite datasets, disjoint samples)."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    default_arch: ClassVar[str]
    input_shape: ClassVar[tuple[int, ...]]
    n_way: int = 1  # output width: 1 for regression, number of classes for classification

    def task(self, seed: int, index: int, split: Split = "train") -> Task:
        """Task ``index`` of ``split`` under family seed ``seed`` (pure function of arguments)."""
        if split not in _SPLIT_CODE:
            raise MetaLearningError(f"split must be 'train' or 'eval', got {split!r}")
        rng = task_rng(seed, _SPLIT_CODE[split], index, 0)
        return self._make_task(rng, seed, index, split)

    @abstractmethod
    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        """Draw the task's hidden parameters from ``rng``."""

    def episodes(
        self,
        seed: int,
        indices: Sequence[int],
        split: Split,
        shots: int,
        queries: int,
        draw: int = 0,
    ) -> Episode:
        """Stacked episodes of several tasks (leading task dimension)."""
        return stack_episodes(
            [self.task(seed, i, split).episode(shots, queries, draw) for i in indices]
        )
