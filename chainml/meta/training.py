"""Shared pieces of the meta-trainers: configs, results and task sampling."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chainml.errors import MetaLearningError
from chainml.meta.models import Params
from chainml.meta.tasks import Episode, TaskFamily
from chainml.meta.tasks.base import task_rng


@dataclass(frozen=True)
class TaskSampling:
    """Which training tasks an iteration sees.

    ``population=None`` draws fresh tasks every iteration (infinite task distributions such as
    sine); an integer restricts meta-training to tasks ``0..population-1`` (a finite fleet).
    """

    meta_batch: int = 25
    shots: int = 10
    queries: int = 10
    population: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.meta_batch < 1 or (self.population is not None and self.population < 1):
            raise MetaLearningError(f"invalid task sampling: {self}")

    def indices(self, iteration: int) -> list[int]:
        if self.population is None:
            return [iteration * self.meta_batch + b for b in range(self.meta_batch)]
        rng = task_rng(self.seed, 2, iteration)
        return sorted(rng.choice(self.population, size=self.meta_batch, replace=True).tolist())

    def batch(self, family: TaskFamily, iteration: int) -> Episode:
        """Stacked training episodes; each task's stream position advances with the iteration,
        so repeated tasks in a finite population show fresh samples."""
        draw = iteration if self.population is not None else 0
        return family.episodes(
            self.seed, self.indices(iteration), "train", self.shots, self.queries, draw
        )


@dataclass
class TrainResult:
    """Meta-weights plus the training curve and cost."""

    params: Params
    iterations: int
    wall_time_s: float
    losses: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        tail = self.losses[-100:]
        return float(np.mean(tail)) if tail else float("nan")
