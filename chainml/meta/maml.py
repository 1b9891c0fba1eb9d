"""MAML (second order), first-order MAML and joint "pretrained on all tasks" training.

Following the torch.func recipe: a task's loss is a pure function of the meta-parameters
(``adapt`` then the query loss), ``vmap`` evaluates a whole meta-batch at once, and the outer
optimizer is Adam (Finn et al. 2017). With ``first_order=True`` the inner gradients are detached
(FOMAML). With zero inner steps the objective is plain multi-task training of one model on all
tasks' data, the "pretrained" baseline of the MAML paper, which is also what FedAvg converges to
with one local step (Jiang et al. 2019, arXiv:1909.12488), hence our FedAvg baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch.func import vmap

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig, adapt, loss_fn
from chainml.meta.models import Model, Params, get_model
from chainml.meta.tasks import TaskFamily
from chainml.meta.training import TaskSampling, TrainResult


@dataclass(frozen=True)
class MAMLConfig:
    """Outer-loop settings; the inner loop is an :class:`AdaptConfig`."""

    iterations: int = 10_000
    meta_lr: float = 1e-3
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    sampling: TaskSampling = field(default_factory=TaskSampling)
    init_seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.meta_lr <= 0:
            raise MetaLearningError(f"invalid MAML config: {self}")


def meta_loss(
    model: Model,
    params: Params,
    batch_x_s: torch.Tensor,
    batch_y_s: torch.Tensor,
    batch_x_q: torch.Tensor,
    batch_y_q: torch.Tensor,
    config: AdaptConfig,
) -> torch.Tensor:
    """Mean post-adaptation query loss over a stacked meta-batch (differentiable in params)."""

    def task_loss(
        p: Params, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor
    ) -> torch.Tensor:
        return loss_fn(model, adapt(model, p, xs, ys, config), xq, yq)

    losses = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(
        params, batch_x_s, batch_y_s, batch_x_q, batch_y_q
    )
    return losses.mean()


def train_maml(
    family: TaskFamily,
    arch_id: str,
    config: MAMLConfig,
    init: Mapping[str, torch.Tensor] | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Meta-train with (FO)MAML; ``config.adapt.steps == 0`` gives joint training."""
    model = get_model(arch_id)
    start = dict(init) if init is not None else model.init(config.init_seed)
    model.spec.validate(start)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in start.items()}
    opt = torch.optim.Adam(params.values(), lr=config.meta_lr)
    joint = config.adapt.steps == 0 and config.adapt.head_refit == "none"
    losses: list[float] = []
    t0 = time.perf_counter()
    for it in range(config.iterations):
        ep = config.sampling.batch(family, it)
        opt.zero_grad(set_to_none=True)
        if joint:  # no adaptation: fit one model to every sample of every task
            x = torch.cat([ep.x_support, ep.x_query], dim=1).flatten(0, 1)
            y = torch.cat([ep.y_support, ep.y_query], dim=1).flatten(0, 1)
            loss = loss_fn(model, params, x, y)
        else:
            loss = meta_loss(
                model, params, ep.x_support, ep.y_support, ep.x_query, ep.y_query, config.adapt
            )
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(it, losses[-1])
    out = {k: v.detach().clone() for k, v in params.items()}
    return TrainResult(out, config.iterations, time.perf_counter() - t0, losses)


def train_fomaml(
    family: TaskFamily,
    arch_id: str,
    config: MAMLConfig,
    init: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """First-order MAML: the same loop with detached inner gradients."""
    cfg = replace(config, adapt=replace(config.adapt, first_order=True))
    return train_maml(family, arch_id, cfg, init)


def train_joint(family: TaskFamily, arch_id: str, config: MAMLConfig) -> TrainResult:
    """The pretrained / FedAvg baseline: one model trained on all tasks, no meta-objective."""
    return train_maml(family, arch_id, replace(config, adapt=AdaptConfig(steps=0)))


def scratch_init(arch_id: str, seed: int = 0) -> Params:
    """The from-scratch baseline: the architecture's seeded random initialisation."""
    return get_model(arch_id).init(seed)
