"""The float layer graph of a deployable model: a list of dense / conv / pool layers.

A chainml architecture (``TinyNet``) is fixed by its registry id, but a pruned or distilled
model has other widths, so the MCU pipeline works on this small graph instead: each layer is a
``Layer`` with float32 numpy weights, and :func:`forward` runs it in torch (differentiable, for
pruning fine-tunes and distillation). Activations are laid out as TFLite Micro does, channels
last: a 1-D signal is ``(width, channels)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from chainml.errors import ConfigError
from chainml.meta.models import GlobalAvgPool1d, get_model

LayerKind = Literal["dense", "conv", "avgpool"]


@dataclass(frozen=True)
class Layer:
    """One layer. Dense weights are ``(out, in)``; conv weights ``(out, kernel, in_channels)``
    (channels last, as TFLite's ``CONV_2D`` filter ``[O, 1, K, C]``)."""

    kind: LayerKind
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    relu: bool = False
    stride: int = 1

    @property
    def out_features(self) -> int:
        assert self.weight is not None
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Graph:
    """A feed-forward model: input shape (channels last) and layers; the last one is the head."""

    name: str
    input_shape: tuple[int, ...]  # (features,) for an MLP, (width, channels) for a 1-D CNN
    layers: tuple[Layer, ...]
    task_kind: Literal["regression", "classification"] = "regression"
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def num_weights(self) -> int:
        return sum(int(la.weight.size) for la in self.layers if la.weight is not None)

    @property
    def body(self) -> Graph:
        """The graph without its head: what the device's head re-fit takes features from."""
        return replace(self, layers=self.layers[:-1])

    def shapes(self) -> list[tuple[int, ...]]:
        """Activation shape after the input and after every layer."""
        shape = self.input_shape
        out = [shape]
        for la in self.layers:
            shape = layer_output_shape(la, shape)
            out.append(shape)
        return out


def layer_output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    if layer.kind == "dense":
        return (layer.out_features,)
    if layer.kind == "conv":
        assert layer.weight is not None
        width, _ = shape
        kernel = layer.weight.shape[1]
        return ((width - kernel) // layer.stride + 1, layer.out_features)
    return (shape[-1],)  # global average pool over width


def from_params(arch_id: str, params: Mapping[str, torch.Tensor], kind: str) -> Graph:
    """The graph of a registered chainml architecture with the given parameters."""
    model = get_model(arch_id)
    model.spec.validate(dict(params))
    body = list(model.module.body)
    layers: list[Layer] = []
    flat = False
    for i, module in enumerate(body):
        relu = i + 1 < len(body) and isinstance(body[i + 1], nn.ReLU)
        if isinstance(module, nn.Linear):
            layers.append(
                Layer("dense", _np(params[f"body.{i}.weight"]), _np(params[f"body.{i}.bias"]), relu)
            )
        elif isinstance(module, nn.Conv1d):
            if module.padding != (0,) or module.dilation != (1,) or module.groups != 1:
                raise ConfigError(f"{arch_id}: only valid, undilated, ungrouped Conv1d deploys")
            w = _np(params[f"body.{i}.weight"]).transpose(0, 2, 1).copy()  # (O, C, K) -> (O, K, C)
            layers.append(Layer("conv", w, _np(params[f"body.{i}.bias"]), relu, module.stride[0]))
        elif isinstance(module, GlobalAvgPool1d):
            layers.append(Layer("avgpool"))
        elif isinstance(module, nn.Flatten) and i == 0:
            flat = True  # an MLP over a (time, channel) window: torch's row-major flatten
        elif isinstance(module, nn.Flatten):
            raise ConfigError(f"{arch_id}: only a leading Flatten deploys")
        elif not isinstance(module, nn.ReLU):
            raise ConfigError(f"{arch_id}: layer {type(module).__name__} has no MCU kernel")
    layers.append(Layer("dense", _np(params["head.weight"]), _np(params["head.bias"])))
    shape = model.arch.input_shape
    if flat or len(shape) == 1:
        input_shape: tuple[int, ...] = (math.prod(shape),)
    else:
        input_shape = (shape[1], shape[0])  # (channels, width) -> channels last
    task_kind = "regression" if model.spec.loss == "mse" else "classification"
    return Graph(arch_id, input_shape, tuple(layers), task_kind, {"arch_id": arch_id})


def to_channels_last(graph: Graph, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Model inputs in chainml's layout (``(N, C, W)`` for a CNN) to the graph's layout."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a.astype(np.float32)
    if len(graph.input_shape) == 2:
        return np.ascontiguousarray(a.transpose(0, 2, 1))
    return a.reshape(a.shape[0], *graph.input_shape)


def forward(
    layers: Sequence[Layer] | Sequence[dict[str, torch.Tensor]],
    x: torch.Tensor,
    spec: Sequence[Layer] | None = None,
    collect: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    """Float forward pass in torch. ``layers`` are ``Layer`` objects, or (for training) dicts of
    ``weight``/``bias`` tensors with ``spec`` giving kinds, activations and strides."""
    spec = spec if spec is not None else layers  # type: ignore[assignment]
    outs = []
    h = x
    for tensors, la in zip(layers, spec, strict=True):
        if la.kind == "avgpool":
            h = h.mean(dim=1)
        else:
            if isinstance(tensors, Layer):
                w = torch.from_numpy(tensors.weight)  # type: ignore[arg-type]
                b = torch.from_numpy(tensors.bias)  # type: ignore[arg-type]
            else:
                w, b = tensors["weight"], tensors["bias"]
            if la.kind == "dense":
                h = h.reshape(h.shape[0], -1) @ w.T + b
            else:  # conv, channels last: (N, W, C) -> (N, W', O)
                y = torch.nn.functional.conv1d(h.transpose(1, 2), w.transpose(1, 2), b, la.stride)
                h = y.transpose(1, 2)
            if la.relu:
                h = torch.relu(h)
        outs.append(h)
    return outs if collect else h


def trainable(graph: Graph) -> list[dict[str, torch.Tensor]]:
    """Fresh float32 tensors (requires_grad) for every layer, for fine-tuning or distillation."""
    out = []
    for la in graph.layers:
        if la.weight is None:
            out.append({})
        else:
            out.append(
                {
                    "weight": torch.tensor(la.weight, requires_grad=True),
                    "bias": torch.tensor(la.bias, requires_grad=True),
                }
            )
    return out


def with_tensors(graph: Graph, tensors: Sequence[dict[str, torch.Tensor]], name: str) -> Graph:
    """A new graph with the given (trained) tensors in place of the weights."""
    layers = []
    for la, t in zip(graph.layers, tensors, strict=True):
        if la.weight is None:
            layers.append(la)
        else:
            layers.append(replace(la, weight=_np(t["weight"]), bias=_np(t["bias"])))
    return replace(graph, name=name, layers=tuple(layers))


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return np.ascontiguousarray(a, dtype=np.float32)
