"""Few-shot evaluation of a plastic SNN under chip conditions, for any chip.

The spiking device protocol (:func:`chainml.neuro.node.device_scores`, what the swarm's devices
run and its round metrics report) on held-out tasks of the family's ``eval`` split, ``shots``
support and ``queries`` query samples from draw 0: mean and 95% CI of the per-task query loss.
Here the chip is a parameter, so the bench can score one model at several bit depths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from chainml.meta.evaluate import mean_ci95
from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import FLOAT, ChipConfig
from chainml.neuro.node import device_scores
from chainml.neuro.plasticity import PlasticSNN


@dataclass(frozen=True)
class PlasticEval:
    loss_mean: float
    loss_ci95: float
    loss_before: float  # without running the rule (the meta-weights alone)
    spike_density: float


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
) -> PlasticEval:
    """Mean query loss after the device runs the rule on each held-out task's support set."""
    tasks = [family.task(seed, i, "eval") for i in range(n_tasks)]
    after, before, density = device_scores(net, chip, params, tasks, shots=shots, queries=queries)
    mean, ci = mean_ci95(after)
    return PlasticEval(mean, ci, float(before.mean()), density)
