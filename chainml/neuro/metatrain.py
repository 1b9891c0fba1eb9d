"""Meta-training the plasticity rule (outer loop), with optional noise and bit-depth injection.

The meta-loss of a task is the query loss after the device has run the rule on its support set
(:meth:`PlasticSNN.adapt`); autograd differentiates it through every pass of the rule, the LIF
dynamics (surrogate gradient) and the chip's rounding (straight-through), and Adam updates the
weights, the per-synapse ``alpha`` and ``eta`` and the feedback weights together (Miconi et al.
2018 train all of them by gradient descent the same way).

Noise-injected meta-training runs the same loop under a :class:`ChipConfig` with noise and a
bit depth (drawn per iteration from ``bits_choices``, so one model serves several chips); the
float run uses the ideal chip. Task batches come from the engine's :class:`TaskSampling`, the
same sampler MAML uses, so "same task and budget" comparisons see the same data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch

from chainml.errors import MetaLearningError
from chainml.meta.models import Params
from chainml.meta.tasks import Episode, TaskFamily, stack_episodes
from chainml.meta.tasks.base import task_rng
from chainml.meta.training import TaskSampling, TrainResult
from chainml.neuro.chip import FLOAT, ChipConfig, ChipState
from chainml.neuro.plasticity import PlasticSNN


@dataclass(frozen=True)
class LifetimeSampling(TaskSampling):
    """Fresh tasks every iteration, each at a random stream position in ``[0, max_draw]``, so a
    drifting family is meta-trained over its devices' whole lifetime (sensor ageing included),
    not only on new sensors. A drop-in :class:`TaskSampling` for the engine's trainers too."""

    max_draw: int = 120

    def batch(self, family: TaskFamily, iteration: int) -> Episode:
        draws = task_rng(self.seed, 6, iteration).integers(0, self.max_draw + 1, self.meta_batch)
        return stack_episodes(
            [
                family.task(self.seed, i, "train").episode(self.shots, self.queries, int(d))
                for i, d in zip(self.indices(iteration), draws, strict=True)
            ]
        )


@dataclass(frozen=True)
class MetaTrainConfig:
    iterations: int = 600
    meta_lr: float = 3e-3
    sampling: TaskSampling = field(
        default_factory=lambda: TaskSampling(meta_batch=16, shots=10, queries=20)
    )
    chip: ChipConfig = FLOAT
    bits_choices: tuple[int | None, ...] | None = None
    max_grad_norm: float = 5.0
    init_seed: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.meta_lr <= 0 or self.max_grad_norm <= 0:
            raise MetaLearningError(f"invalid meta-training config: {self}")


def meta_train(
    net: PlasticSNN,
    family: TaskFamily,
    config: MetaTrainConfig,
    init: Mapping[str, torch.Tensor] | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Learn the weights and the plasticity rule; returns detached meta-parameters."""
    start = dict(init) if init is not None else net.init(config.init_seed)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in start.items()}
    opt = torch.optim.Adam(params.values(), lr=config.meta_lr)
    losses: list[float] = []
    t0 = time.perf_counter()
    for it in range(config.iterations):
        ep = config.sampling.batch(family, it)
        chip_cfg = config.chip
        if config.bits_choices:
            pick = task_rng(config.seed, 5, it).integers(len(config.bits_choices))
            chip_cfg = replace(chip_cfg, bits=config.bits_choices[int(pick)])
        chip = ChipState(chip_cfg, seed=config.seed * 1_000_003 + it)
        opt.zero_grad(set_to_none=True)
        traces, _ = net.adapt(params, ep.x_support, ep.y_support, chip)
        loss, _ = net.loss(params, traces, ep.x_query, ep.y_query, chip)
        loss = loss.mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), config.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(it, losses[-1])
    out: Params = {k: v.detach().clone() for k, v in params.items()}
    return TrainResult(out, config.iterations, time.perf_counter() - t0, losses)
