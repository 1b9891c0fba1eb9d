"""Centralised Reptile (Nichol, Achiam & Schulman 2018, arXiv:1803.02999).

Each iteration adapts a meta-batch of tasks with the shared :func:`adapt` (batched with
``vmap``), then moves the meta-weights towards the mean adapted weights:
``theta += eps * mean(phi - theta)``, with ``eps`` annealed linearly to zero as in the paper.
The federated variant in :mod:`chainml.meta.federated` is the same update computed by nodes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch.func import vmap

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig, adapt, loss_fn
from chainml.meta.models import Params, get_model
from chainml.meta.tasks import TaskFamily
from chainml.meta.training import TaskSampling, TrainResult


@dataclass(frozen=True)
class ReptileConfig:
    iterations: int = 10_000
    outer_lr: float = 1.0
    outer_lr_final: float = 0.0
    adapt: AdaptConfig = field(default_factory=lambda: AdaptConfig(steps=5, inner_lr=0.02))
    sampling: TaskSampling = field(default_factory=lambda: TaskSampling(meta_batch=5))
    init_seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.outer_lr <= 0 or self.adapt.steps < 1:
            raise MetaLearningError(f"invalid Reptile config: {self}")

    def outer_lr_at(self, it: int) -> float:
        frac = it / max(self.iterations, 1)
        return self.outer_lr + (self.outer_lr_final - self.outer_lr) * frac


def train_reptile(
    family: TaskFamily,
    arch_id: str,
    config: ReptileConfig,
    init: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Meta-train with Reptile; support and query samples are both used for adaptation."""
    model = get_model(arch_id)
    params = {k: v.detach().clone() for k, v in (init or model.init(config.init_seed)).items()}
    model.spec.validate(params)

    def task_adapt(p: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[Params, torch.Tensor]:
        new = adapt(model, p, x, y, config.adapt)
        return new, loss_fn(model, new, x, y)

    losses: list[float] = []
    t0 = time.perf_counter()
    for it in range(config.iterations):
        ep = config.sampling.batch(family, it)
        x = torch.cat([ep.x_support, ep.x_query], dim=1)
        y = torch.cat([ep.y_support, ep.y_query], dim=1)
        new, loss = vmap(task_adapt, in_dims=(None, 0, 0))(params, x, y)
        eps = config.outer_lr_at(it)
        params = {k: p + eps * (new[k].mean(dim=0) - p) for k, p in params.items()}
        losses.append(float(loss.mean()))
    return TrainResult(params, config.iterations, time.perf_counter() - t0, losses)
