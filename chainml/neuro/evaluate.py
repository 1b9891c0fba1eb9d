"""Few-shot evaluation of a plastic SNN under chip conditions (the engine's protocol).

Same protocol as :func:`chainml.meta.evaluate.evaluate`: held-out tasks of the family's
``eval`` split, ``shots`` support and ``queries`` query samples from draw 0, mean and 95% CI of
the per-task query loss. Here the device adapts with the plasticity rule on the simulated chip,
so a model is scored under the bit depth and noise it will run with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from chainml.meta.evaluate import mean_ci95
from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import FLOAT, ChipConfig, ChipState
from chainml.neuro.plasticity import PlasticSNN


@dataclass(frozen=True)
class PlasticEval:
    loss_mean: float
    loss_ci95: float
    loss_before: float  # without running the rule (the meta-weights alone)
    spike_density: float


@torch.no_grad()
def evaluate_plastic(
    net: PlasticSNN,
    params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    *,
    chip: ChipConfig = FLOAT,
    n_tasks: int = 200,
    shots: int = 10,
    queries: int = 50,
    seed: int = 0,
    chip_seed: int = 1,
    chunk: int = 100,
) -> PlasticEval:
    """Mean query loss after the device runs the rule on each held-out task's support set."""
    after, before, density = [], [], []
    for lo in range(0, n_tasks, chunk):
        ep = family.episodes(seed, range(lo, min(lo + chunk, n_tasks)), "eval", shots, queries)
        state = ChipState(chip, chip_seed + lo)
        traces, _ = net.adapt(params, ep.x_support, ep.y_support, state)
        loss, fwd = net.loss(params, traces, ep.x_query, ep.y_query, state)
        zero = net.zero_traces(params, ep.x_query.shape[0])
        loss0, _ = net.loss(params, zero, ep.x_query, ep.y_query, state)
        after.append(loss.numpy())
        before.append(loss0.numpy())
        density.append(np.mean([s.mean().item() for s in fwd.spikes]))
    mean, ci = mean_ci95(np.concatenate(after))
    return PlasticEval(mean, ci, float(np.concatenate(before).mean()), float(np.mean(density)))
