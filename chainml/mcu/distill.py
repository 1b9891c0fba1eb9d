"""Knowledge distillation into a smaller student, and the fine-tune that pruned models share.

The student learns from the teacher's behaviour on unlabelled inputs of the task family (no
labels needed, so a device fleet's raw data would do):

- **logit matching** (Ba & Caruana 2014; Hinton et al. 2015 in the high-temperature limit): the
  student's head output regresses the teacher's;
- **a feature hint** (FitNets, Romero et al. 2015): a learned linear map ``P`` takes the
  student's body features to the teacher's, because devices re-fit the head on those features,
  so the features are what must survive compression.

Both terms are normalised by the teacher's variance. With a task family given, the student
also trains on the devices' own objective, the query loss after the ridge head re-fit on a
labelled support set (R2-D2, Bertinetto et al. 2019, as ``chainml.meta.adapt.refit_head``), on
the family's training tasks: on 10-shot sine, feature matching alone leaves the ridge fit
three times worse. Pruned models are fine-tuned with the same loss, their masks held fixed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from chainml.errors import ConfigError
from chainml.mcu.graph import Graph, Layer, forward, to_channels_last, trainable, with_tensors
from chainml.meta.tasks import TaskFamily

RIDGE_LAMBDA = 1.0


def student(teacher: Graph, fraction: float, seed: int = 0) -> Graph:
    """The teacher's topology with every hidden width scaled by ``fraction`` (at least 2),
    freshly initialised (PyTorch's default uniform scheme)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"student width fraction must be in (0, 1], got {fraction}")
    gen = np.random.default_rng(seed)
    layers: list[Layer] = []
    fan_in_channels = teacher.input_shape[-1] if len(teacher.input_shape) == 2 else None
    prev = teacher.input_shape[0] if fan_in_channels is None else fan_in_channels
    for i, la in enumerate(teacher.layers):
        if la.weight is None:
            layers.append(la)
            continue
        last = i == len(teacher.layers) - 1
        out = la.weight.shape[0] if last else max(2, round(la.weight.shape[0] * fraction))
        shape = (out, prev) if la.kind == "dense" else (out, la.weight.shape[1], prev)
        fan_in = math.prod(shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        w = gen.uniform(-bound, bound, shape).astype(np.float32)
        b = gen.uniform(-bound, bound, (out,)).astype(np.float32)
        layers.append(replace(la, weight=w, bias=b))
        prev = out
    return replace(teacher, name=f"{teacher.name}-student{fraction:g}", layers=tuple(layers))


def distill(
    teacher: Graph,
    pupil: Graph,
    inputs: np.ndarray,
    *,
    steps: int = 1500,
    lr: float = 3e-3,
    batch: int = 256,
    seed: int = 0,
    masks: Sequence[np.ndarray | None] | None = None,
    name: str | None = None,
    family: TaskFamily | None = None,
    meta_batch: int = 16,
) -> Graph:
    """Train ``pupil`` to mimic ``teacher`` on ``inputs`` (channels last); returns the new graph.

    ``masks`` (one per layer, ``None`` for dense layers) keep pruned weights at zero.
    """
    if len(inputs) < 2:
        raise ConfigError("distillation needs at least 2 inputs")
    torch.manual_seed(seed)
    x_all = torch.from_numpy(np.asarray(inputs, dtype=np.float32))
    with torch.no_grad():
        t_outs = forward(teacher.layers, x_all, collect=True)
    t_feat = t_outs[-2].reshape(len(x_all), -1)  # type: ignore[index]
    t_out = t_outs[-1]  # type: ignore[index]
    f_var = t_feat.var() + 1e-8
    o_var = t_out.var() + 1e-8
    tensors = trainable(pupil)
    mask_t = [
        None if m is None else torch.from_numpy(m.astype(np.float32))
        for m in (masks or [None] * len(tensors))
    ]
    d_s = pupil.shapes()[-2]
    hint = torch.nn.Linear(int(np.prod(d_s)), t_feat.shape[1])
    params = [t for layer in tensors for t in layer.values()] + list(hint.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    gen = torch.Generator().manual_seed(seed)

    def masked() -> list[dict[str, torch.Tensor]]:
        out = []
        for layer, m in zip(tensors, mask_t, strict=True):
            if m is None or not layer:
                out.append(layer)
            else:
                out.append({"weight": layer["weight"] * m, "bias": layer["bias"]})
        return out

    for step in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch, len(x_all)),), generator=gen)
        current = masked()
        outs = forward(current, x_all[idx], spec=pupil.layers, collect=True)
        s_feat = outs[-2].reshape(len(idx), -1)  # type: ignore[index]
        loss = ((hint(s_feat) - t_feat[idx]) ** 2).mean() / f_var
        loss = loss + ((outs[-1] - t_out[idx]) ** 2).mean() / o_var  # type: ignore[index]
        if family is not None:
            loss = loss + task_loss(pupil, current, family, step, meta_batch, seed)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    final = [{k: v.detach() for k, v in layer.items()} for layer in masked()]
    return with_tensors(pupil, final, name or pupil.name)


def task_loss(
    graph: Graph,
    tensors: Sequence[dict[str, torch.Tensor]],
    family: TaskFamily,
    step: int,
    meta_batch: int,
    seed: int,
) -> torch.Tensor:
    """Mean query loss after a ridge head re-fit on each task's support set (train split)."""
    classify = family.kind == "classification"
    shots = 5 if classify else 10
    ep = family.episodes(
        seed + 1, range(step * meta_batch, (step + 1) * meta_batch), "train", shots, 10
    )
    t, s = ep.x_support.shape[:2]
    q = ep.x_query.shape[1]
    xs = torch.from_numpy(
        to_channels_last(graph, ep.x_support.reshape(t * s, *ep.x_support.shape[2:]))
    )
    xq = torch.from_numpy(to_channels_last(graph, ep.x_query.reshape(t * q, *ep.x_query.shape[2:])))
    body = graph.layers[:-1]
    fs = forward(list(tensors)[:-1], xs, spec=body).reshape(t, s, -1)  # type: ignore[union-attr]
    fq = forward(list(tensors)[:-1], xq, spec=body).reshape(t, q, -1)  # type: ignore[union-attr]
    a = torch.cat([fs, torch.ones(t, s, 1)], dim=2)
    aq = torch.cat([fq, torch.ones(t, q, 1)], dim=2)
    if classify:
        targets = (ep.y_support.unsqueeze(-1) == torch.arange(family.n_way)).float()
    else:
        targets = ep.y_support
    gram = a.transpose(1, 2) @ a + RIDGE_LAMBDA * torch.eye(a.shape[2])
    w = torch.linalg.solve(gram, a.transpose(1, 2) @ targets)
    pred = aq @ w
    if classify:
        return torch.nn.functional.cross_entropy(pred.reshape(t * q, -1), ep.y_query.reshape(-1))
    return torch.nn.functional.mse_loss(pred, ep.y_query)
