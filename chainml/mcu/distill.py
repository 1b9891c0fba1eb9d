"""Knowledge distillation into a smaller student, and the fine-tune that pruned models share.

A deployed device keeps only the body of the exported model: it re-fits the head on its own
samples (the device protocol). So what a smaller model must keep is the body's *features*, and
what it is judged on is the query loss after that re-fit. The loss has two terms:

- **a feature hint** (FitNets, Romero et al. 2015): a learned linear map ``P`` takes the
  student's body features to the teacher's, on unlabelled inputs of the task family,
  normalised by the teacher's feature variance (weight ``hint_weight``);
- **the device-protocol loss** (R2-D2, Bertinetto et al. 2019): on each of ``meta_batch``
  training tasks per step, the ridge head re-fit on the protocol's ``shots`` support samples
  with its ``ridge_lambda`` (``chainml.meta.adapt.refit_head``), then the query loss: the
  student is meta-trained on the objective its devices run, on the family's training tasks
  (never the held-out ones a score is measured on).

Without a task family, the student matches the teacher's head outputs as well (logit matching,
Ba & Caruana 2014), so label-free distillation still has a target. Pruned models are fine-tuned
with the same loss, their masks held fixed. With ``weight_bits=4`` the body's weights are
fake-quantized to 4 bits in every forward pass (per output channel, straight-through
gradients: quantization-aware training), so the int4 export loses little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from chainml.errors import ConfigError
from chainml.mcu.evaluate import DeviceProtocol
from chainml.mcu.graph import Graph, Layer, forward, to_channels_last, trainable, with_tensors
from chainml.mcu.ptq import weight_levels
from chainml.meta.tasks import TaskFamily

TRAIN_QUERIES = 10


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


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel quantize-dequantize with a straight-through gradient: the
    values :func:`chainml.mcu.ptq.quantize_weights` will store."""
    levels = float(weight_levels(bits))
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = torch.where(amax > 0, amax / levels, torch.ones_like(amax))
    scale = scale.reshape(-1, *([1] * (w.dim() - 1)))
    q = torch.clamp(torch.round(w / scale), -levels, levels) * scale
    return w + (q - w).detach()


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
    protocol: DeviceProtocol | None = None,
    meta_batch: int = 16,
    hint_weight: float = 1.0,
    weight_bits: int = 8,
) -> Graph:
    """Train ``pupil`` to keep ``teacher``'s features on ``inputs`` (channels last) and, with a
    family and its device protocol, to do well under that protocol; returns the new graph.

    ``masks`` (one per layer, ``None`` for dense layers) keep pruned weights at zero."""
    if len(inputs) < 2:
        raise ConfigError("distillation needs at least 2 inputs")
    if (family is None) != (protocol is None):
        raise ConfigError("the device-protocol loss needs both a task family and its protocol")
    weight_levels(weight_bits)
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
    last = len(tensors) - 1

    def effective() -> list[dict[str, torch.Tensor]]:
        """The weights the device will run: masked, and fake-quantized for 4-bit bodies."""
        out = []
        for i, (layer, m) in enumerate(zip(tensors, mask_t, strict=True)):
            if not layer:
                out.append(layer)
                continue
            w = layer["weight"] if m is None else layer["weight"] * m
            if weight_bits != 8 and i != last:
                w = fake_quant(w, weight_bits)
            out.append({"weight": w, "bias": layer["bias"]})
        return out

    for step in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch, len(x_all)),), generator=gen)
        current = effective()
        outs = forward(current, x_all[idx], spec=pupil.layers, collect=True)
        s_feat = outs[-2].reshape(len(idx), -1)  # type: ignore[index]
        loss = hint_weight * ((hint(s_feat) - t_feat[idx]) ** 2).mean() / f_var
        if family is not None and protocol is not None:
            loss = loss + task_loss(pupil, current, family, protocol, step, meta_batch, seed)
        else:
            loss = loss + ((outs[-1] - t_out[idx]) ** 2).mean() / o_var  # type: ignore[index]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    final = [{k: v.detach() for k, v in layer.items()} for layer in effective()]
    out = with_tensors(pupil, final, name or pupil.name)
    if weight_bits != 8:
        out = replace(out, meta={**out.meta, "weight_bits": str(weight_bits)})
    return out


def task_loss(
    graph: Graph,
    tensors: Sequence[dict[str, torch.Tensor]],
    family: TaskFamily,
    protocol: DeviceProtocol,
    step: int,
    meta_batch: int,
    seed: int,
) -> torch.Tensor:
    """Mean query loss after the device's ridge head re-fit on each task's ``protocol.shots``
    support samples (train split): what the device protocol scores."""
    classify = family.kind == "classification"
    ep = family.episodes(
        seed + 1, range(step * meta_batch, (step + 1) * meta_batch), "train", protocol.shots,
        TRAIN_QUERIES,
    )  # fmt: skip
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
    gram = a.transpose(1, 2) @ a + protocol.ridge_lambda * torch.eye(a.shape[2])
    w = torch.linalg.solve(gram, a.transpose(1, 2) @ targets)
    pred = aq @ w
    if classify:
        return torch.nn.functional.cross_entropy(pred.reshape(t * q, -1), ep.y_query.reshape(-1))
    return torch.nn.functional.mse_loss(pred, ep.y_query)
