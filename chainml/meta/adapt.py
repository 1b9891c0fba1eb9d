"""The one adaptation routine, shared by meta-training, evaluation and simulated devices.

``adapt`` is a pure function of ``(params, support set, config)``: gradients come from
``torch.func.grad`` and every step is a dict comprehension ``{k: p - lr * g}``, nothing is changed
in place. Because of that, MAML differentiates straight through it (second order), ``vmap``
batches it over tasks, and a device runs exactly the code that was meta-trained.

Over-adaptation is limited by the step count, an optional proximal term
``mu/2 * ||theta - theta_0||^2`` (FedProx, Li et al. 2020) and optional gradient-norm clipping.
Optionally the linear head is first re-fit in closed form by ridge regression on the body's
features (differentiable, R2-D2: Bertinetto et al., ICLR 2019), the "partial local
reconstruction" of FedRecon (Singhal et al., NeurIPS 2021) that TinyMetaFed builds on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.func import grad

from chainml.errors import MetaLearningError
from chainml.meta.models import Model, Params


@dataclass(frozen=True)
class AdaptConfig:
    """Inner-loop settings. ``steps`` counts gradient steps (the ridge re-fit is not a step)."""

    steps: int = 1
    inner_lr: float = 0.01
    first_order: bool = False
    proximal: float = 0.0
    max_grad_norm: float | None = None
    train: Literal["all", "body", "head"] = "all"
    head_refit: Literal["none", "ridge"] = "none"
    ridge_lambda: float = 1.0
    online: bool = False  # one sample per step, cycling through the support set in order

    def __post_init__(self) -> None:
        if self.steps < 0 or self.inner_lr < 0 or self.proximal < 0 or self.ridge_lambda <= 0:
            raise MetaLearningError(f"invalid adaptation config: {self}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise MetaLearningError(f"max_grad_norm must be positive, got {self.max_grad_norm}")
        if self.train not in ("all", "body", "head") or self.head_refit not in ("none", "ridge"):
            raise MetaLearningError(f"invalid adaptation config: {self}")


def loss_fn(
    model: Model, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Mean squared error (regression) or cross-entropy (classification)."""
    out = model(params, x)
    if model.spec.loss == "mse":
        return F.mse_loss(out, y)
    return F.cross_entropy(out, y)


def accuracy(
    model: Model, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Fraction of correct argmax predictions (classification only)."""
    return (model(params, x).argmax(dim=-1) == y).float().mean()


def refit_head(
    model: Model, params: Params, x: torch.Tensor, y: torch.Tensor, ridge_lambda: float
) -> Params:
    """Closed-form ridge fit of the linear head (bias included) on the body's features; targets
    are one-hot for classification.

    Solved in the primal form ``(A^T A + lambda I) w = A^T Y``: the sufficient statistics
    ``A^T A`` and ``A^T Y`` are sums over samples, so a device accumulates them one sample at a
    time as data arrives (recursive least squares, O(d^2) RAM however many samples it sees).
    """
    feats = model.features(params, x)
    ones = torch.ones(feats.shape[0], 1, dtype=feats.dtype)
    a = torch.cat([feats, ones], dim=1)  # (n, d+1)
    if model.spec.loss == "mse":
        targets = y
    else:
        classes = torch.arange(model.spec.output_dim)
        targets = (y.unsqueeze(-1) == classes).to(feats.dtype)
    gram = a.T @ a + ridge_lambda * torch.eye(a.shape[1], dtype=a.dtype)
    w = torch.linalg.solve(gram, a.T @ targets)  # (d+1, out)
    return {**params, "head.weight": w[:-1].T.contiguous(), "head.bias": w[-1].contiguous()}


def adapt(
    model: Model,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    config: AdaptConfig,
) -> Params:
    """Adapt ``params`` to one task's support set ``(x, y)``; returns new tensors."""
    params = dict(params)
    if config.head_refit == "ridge":
        params = refit_head(model, params, x, y, config.ridge_lambda)
    anchor = params
    head = set(model.spec.head)
    # A tuple in parameter order, not a set: sums over it must not depend on hash seeds.
    trainable = tuple(
        k for k in params if config.train == "all" or ((k in head) == (config.train == "head"))
    )

    def objective(p: Params, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(model, p, xb, yb)
        if config.proximal > 0:
            loss = loss + 0.5 * config.proximal * sum(
                ((p[k] - anchor[k]) ** 2).sum() for k in trainable
            )
        return loss

    n = x.shape[0]
    for step in range(config.steps):
        xb, yb = (
            (x[step % n : step % n + 1], y[step % n : step % n + 1]) if config.online else (x, y)
        )
        g = grad(objective)(params, xb, yb)
        if config.first_order:
            g = {k: v.detach() for k, v in g.items()}
        if config.max_grad_norm is not None:
            norm = torch.sqrt(sum((g[k] ** 2).sum() for k in trainable))
            factor = torch.clamp(config.max_grad_norm / (norm + 1e-12), max=1.0)
            g = {k: v * factor for k, v in g.items()}
        params = {k: p - config.inner_lr * g[k] if k in trainable else p for k, p in params.items()}
    return params
