"""The two evaluation protocols, defined once and always reported side by side.

* **MAML protocol** (Finn et al. 2017): K = 5 shots; k in {0, 1, 5, 10} plain full-batch SGD
  steps at alpha = 0.01 on all parameters; the loss on 100 query points per task (15 for
  classification); mean and 95% CI over fresh held-out tasks (1,000 for a reported figure).
* **Device protocol**: exactly what a deployed chainml device does with the published weights:
  it collects the recipe's ``device_shots`` local samples and re-fits its head by ridge
  regression on the body's features (:func:`~chainml.meta.federated.device_adapt_config`), with no
  backprop, within its RAM budget (the ridge statistics are (d+1)^2 floats). Online learning
  on the device is recursive least squares: after k online steps the device has folded k more
  samples (k more per class for classification) into the same statistics and re-solved its
  head. ``device_curve`` reports k in {0, 5, 10} for the task-family tables. For a spiking
  recipe the device instead runs the version's meta-learned plasticity rule on the same samples,
  on the recipe's simulated chip (:mod:`chainml.neuro.node`); still no backprop.

Both use :func:`chainml.meta.evaluate.evaluate`, hence the same ``adapt`` that devices run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig
from chainml.meta.evaluate import evaluate, mean_ci95
from chainml.meta.federated import device_adapt_config
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import TaskFamily

MAML_SHOTS = 5
MAML_STEPS = (0, 1, 5, 10)
MAML_INNER_LR = 0.01
EVAL_QUERIES = 50
"""Query samples per held-out task of the spiking device protocol."""
REPORT_TASKS = 1_000
"""Tasks behind a reported figure; per-round curves may use fewer (at least 100)."""


@dataclass(frozen=True)
class ProtocolScores:
    """Both protocols on one set of weights. ``maml[k]`` and ``device`` are mean losses (MSE for
    regression, cross-entropy for classification); ``*_ci95`` are 95% half-widths and
    ``*_acc`` accuracies (classification only)."""

    maml: dict[int, float]
    maml_ci95: dict[int, float]
    device: float
    device_ci95: float
    maml_acc: dict[int, float] | None = None
    device_acc: float | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "maml": {str(k): v for k, v in self.maml.items()},
            "maml_ci95": {str(k): v for k, v in self.maml_ci95.items()},
            "device": self.device,
            "device_ci95": self.device_ci95,
        }
        if self.maml_acc is not None:
            out["maml_acc"] = {str(k): v for k, v in self.maml_acc.items()}
            out["device_acc"] = self.device_acc
        return out


def maml_protocol(
    params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    *,
    arch_id: str | None = None,
    n_tasks: int = REPORT_TASKS,
    seed: int = 0,
) -> tuple[dict[int, float], dict[int, float], dict[int, float] | None]:
    """(mean loss, 95% CI, accuracy) per step count, MAML's way."""
    result = evaluate(
        params,
        family,
        arch_id=arch_id,
        n_tasks=n_tasks,
        shots=MAML_SHOTS,
        steps=MAML_STEPS,
        adapt_config=AdaptConfig(inner_lr=MAML_INNER_LR),
        seed=seed,
    )
    loss = {r.steps: r.loss_mean for r in result.results}
    ci = {r.steps: r.loss_ci95 for r in result.results}
    acc = None
    if result.results[0].acc_mean is not None:
        acc = {r.steps: float(r.acc_mean or 0.0) for r in result.results}
    return loss, ci, acc


def device_protocol(
    params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    recipe: Recipe,
    *,
    arch_id: str | None = None,
    n_tasks: int = REPORT_TASKS,
    seed: int = 0,
    steps: int = 0,
) -> tuple[float, float, float | None]:
    """(mean loss, 95% CI, accuracy) of a device that re-fits its head on its local samples,
    after ``steps`` online steps (0: the headline protocol)."""
    curve = device_curve(
        params, family, recipe, arch_id=arch_id, n_tasks=n_tasks, seed=seed, steps=(steps,)
    )
    return curve[steps]


def device_curve(
    params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    recipe: Recipe,
    *,
    arch_id: str | None = None,
    n_tasks: int = REPORT_TASKS,
    seed: int = 0,
    steps: Sequence[int] = (0, 5, 10),
) -> dict[int, tuple[float, float, float | None]]:
    """The device protocol after each number of online steps: {k: (loss, CI, accuracy)}.

    Step k re-fits the head on ``device_shots + k`` samples of each held-out task (what the
    device's recursive least squares holds after k more samples) and scores fresh query
    samples of the same tasks."""
    if any(k < 0 for k in steps):
        raise MetaLearningError(f"online steps must be >= 0, got {list(steps)}")
    if recipe.spiking is not None:
        return _spiking_curve(params, family, recipe, arch_id, n_tasks, seed, steps)
    out = {}
    for k in steps:
        result = evaluate(
            params,
            family,
            arch_id=arch_id,
            n_tasks=n_tasks,
            shots=recipe.device_shots + k,
            steps=(0,),
            adapt_config=device_adapt_config(recipe),
            seed=seed,
        )
        r = result.results[0]
        out[k] = (r.loss_mean, r.loss_ci95, r.acc_mean)
    return out


def _spiking_curve(
    params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    recipe: Recipe,
    arch_id: str | None,
    n_tasks: int,
    seed: int,
    steps: Sequence[int],
) -> dict[int, tuple[float, float, float | None]]:
    """The spiking device protocol: the device runs the version's plasticity rule on
    ``device_shots + k`` samples on the recipe's chip (bit depth, noise), with no backprop,
    and is scored on ``EVAL_QUERIES`` fresh samples of the same held-out task."""
    from chainml.neuro.node import device_protocol_loss

    tasks = [family.task(seed, i, "eval") for i in range(n_tasks)]
    arch = arch_id or family.default_arch
    out = {}
    for k in steps:
        after, _, _ = device_protocol_loss(
            params, arch, tasks, recipe, shots=recipe.device_shots + k, queries=EVAL_QUERIES
        )
        mean, ci = mean_ci95(after)
        out[k] = (mean, ci, None)
    return out


def score(
    params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    recipe: Recipe,
    *,
    arch_id: str | None = None,
    n_tasks: int = REPORT_TASKS,
    seed: int = 0,
) -> ProtocolScores:
    """Both protocols on the same weights and the same held-out tasks."""
    maml, maml_ci, maml_acc = maml_protocol(
        params, family, arch_id=arch_id, n_tasks=n_tasks, seed=seed
    )
    device, device_ci, device_acc = device_protocol(
        params, family, recipe, arch_id=arch_id, n_tasks=n_tasks, seed=seed
    )
    return ProtocolScores(maml, maml_ci, device, device_ci, maml_acc, device_acc)
