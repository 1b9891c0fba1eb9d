"""Few-shot evaluation: loss (and accuracy) after k adaptation steps on unseen tasks.

For each of ``n_tasks`` held-out tasks (the family's ``eval`` split), the meta-weights are adapted
with the shared :func:`adapt` on ``shots`` support samples and scored on fresh query samples.
With ``quantized=True`` the evaluation is int8-aware: the device receives int8 meta-weights and
runs int8 inference after adapting, so both the starting weights and the adapted weights go
through the int8 round trip. Results are the mean and the 95% confidence half-width
``1.96 * sd / sqrt(n)`` (normal approximation; n >= 100).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch.func import vmap

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig, accuracy, adapt, loss_fn
from chainml.meta.models import Params, get_model
from chainml.meta.quant import fake_quant_params
from chainml.meta.tasks import TaskFamily

MIN_TASKS = 100


@dataclass(frozen=True)
class StepResult:
    steps: int
    loss_mean: float
    loss_ci95: float
    acc_mean: float | None = None
    acc_ci95: float | None = None


@dataclass(frozen=True)
class EvalResult:
    family: str
    arch_id: str
    n_tasks: int
    shots: int
    quantized: bool
    results: tuple[StepResult, ...] = field(default_factory=tuple)

    def at(self, steps: int) -> StepResult:
        for r in self.results:
            if r.steps == steps:
                return r
        raise MetaLearningError(
            f"no result for {steps} steps; have {[r.steps for r in self.results]}"
        )

    def metric(self, steps: int) -> float:
        """The headline number: accuracy for classification, loss for regression."""
        r = self.at(steps)
        return r.acc_mean if r.acc_mean is not None else r.loss_mean

    def as_dict(self) -> dict:
        return asdict(self)


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95% CI half-width (normal approximation)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(len(v)))


def evaluate(
    meta_params: Mapping[str, torch.Tensor],
    family: TaskFamily,
    *,
    arch_id: str | None = None,
    n_tasks: int = MIN_TASKS,
    shots: int = 5,
    queries: int | None = None,
    steps: Sequence[int] = (0, 1, 5, 10),
    adapt_config: AdaptConfig | None = None,
    quantized: bool = False,
    per_channel: bool = True,
    seed: int = 0,
    chunk: int = 200,
) -> EvalResult:
    """Per-k mean and 95% CI of the query loss (and accuracy) over ``n_tasks`` eval tasks."""
    if n_tasks < MIN_TASKS:
        raise MetaLearningError(f"use at least {MIN_TASKS} tasks for a 95% CI, got {n_tasks}")
    arch_id = arch_id or family.default_arch
    model = get_model(arch_id)
    params = {k: v.detach() for k, v in meta_params.items()}
    model.spec.validate(params)
    base = adapt_config or AdaptConfig()
    classify = model.spec.loss == "cross_entropy"
    queries = queries or (15 if classify else 100)
    if quantized:
        params = fake_quant_params(params, per_channel)

    def score(
        p: Params,
        xs: torch.Tensor,
        ys: torch.Tensor,
        xq: torch.Tensor,
        yq: torch.Tensor,
        cfg: AdaptConfig,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new = adapt(model, p, xs, ys, cfg)
        if quantized:
            new = fake_quant_params(new, per_channel)
        acc = accuracy(model, new, xq, yq) if classify else torch.zeros(())
        return loss_fn(model, new, xq, yq), acc

    per_k: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {k: ([], []) for k in steps}
    for lo in range(0, n_tasks, chunk):
        ep = family.episodes(seed, range(lo, min(lo + chunk, n_tasks)), "eval", shots, queries)
        for k in steps:
            cfg = replace(base, steps=k)
            fn = vmap(lambda *a, c=cfg: score(*a, c), in_dims=(None, 0, 0, 0, 0))
            loss, acc = fn(params, ep.x_support, ep.y_support, ep.x_query, ep.y_query)
            per_k[k][0].append(loss.detach().numpy())
            per_k[k][1].append(acc.detach().numpy())
    results = []
    for k in steps:
        loss_m, loss_ci = mean_ci95(np.concatenate(per_k[k][0]))
        acc_m, acc_ci = mean_ci95(np.concatenate(per_k[k][1])) if classify else (None, None)
        results.append(StepResult(k, loss_m, loss_ci, acc_m, acc_ci))
    return EvalResult(family.name, arch_id, n_tasks, shots, quantized, tuple(results))
