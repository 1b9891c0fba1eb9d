"""TFLite Micro's integer arithmetic and the Python int8 reference that C and TFLM must match.

Rounding mode: TFLite Micro's default "double rounding" (built without
``TFLITE_SINGLE_ROUNDING``), the mode of the interpreter in the ``tflite-micro`` wheel; the
generated C code implements the same two steps:

1. ``SaturatingRoundingDoublingHighMul(x, M)``: ``(x * M + nudge) / 2^31`` truncated toward
   zero, with ``nudge = 2^30`` for a non-negative product and ``1 - 2^30`` otherwise;
2. ``RoundingDivideByPOT(v, -shift)``: arithmetic shift right, rounding half away from zero.

A layer accumulates ``sum((x - input_zp) * w) + bias`` in int32, requantizes with a Q0.31
multiplier ``M`` and a shift per output channel, adds the output zero point and clamps to the
fused activation's range. Every function here works on whole numpy batches in int64, which
holds every intermediate value of the int32/int64 C code exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from chainml.errors import ConfigError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

Q8Kind = Literal["dense", "conv", "avgpool"]


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= M * 2^(shift - 31)``, ``M`` in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0:
        raise ConfigError(f"cannot quantize the multiplier {real}")
    fraction, shift = math.frexp(real)
    scaled = fraction * float(1 << 31)  # exact: a power-of-two scaling of a double
    whole = math.floor(scaled)
    q = whole + (1 if scaled - whole >= 0.5 else 0)  # std::round, half away from zero
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    x = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(x >= 0, x >> 31, -((-x) >> 31))  # C division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + 2**31) % 2**32) - 2**31


def multiply_by_quantized_multiplier(
    acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier`` (double rounding), broadcast over the last axis."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(acc.astype(np.int64) * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


@dataclass(frozen=True)
class Q8Layer:
    """One int8 layer with everything the integer kernels need (TFLM conventions)."""

    kind: Q8Kind
    input_zp: int
    output_zp: int
    act_min: int
    act_max: int
    output_scale: float
    weight: np.ndarray | None = None  # int8, dense (O, I), conv (O, K, C)
    weight_scales: np.ndarray | None = None  # float32 per output channel
    bias: np.ndarray | None = None  # int32, scale input_scale * weight_scale
    multiplier: np.ndarray | None = None  # int32 per output channel
    shift: np.ndarray | None = None  # int32 per output channel
    stride: int = 1
    relu: bool = False
    weight_bits: int = 8  # 4: values in [-7, 7], stored two per byte by the C build


@dataclass(frozen=True)
class Int8Model:
    """A quantized graph: int8 input and output with their affine parameters, and layers."""

    name: str
    input_shape: tuple[int, ...]
    input_scale: float
    input_zp: int
    layers: tuple[Q8Layer, ...]
    task_kind: str = "regression"
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def output_scale(self) -> float:
        return self.layers[-1].output_scale

    @property
    def output_zp(self) -> int:
        return self.layers[-1].output_zp

    @property
    def output_dim(self) -> int:
        w = self.layers[-1].weight
        assert w is not None
        return int(w.shape[0])

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float inputs (channels last) to int8, as the device's sensor front end would."""
        q = np.rint(np.asarray(x, dtype=np.float64) / self.input_scale) + self.input_zp
        return np.clip(q, -128, 127).astype(np.int8).reshape(len(x), *self.input_shape)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - self.output_zp) * np.float32(self.output_scale)


def run_layer(layer: Q8Layer, x: np.ndarray) -> np.ndarray:
    """One int8 layer on a batch (``(N, I)`` dense input, ``(N, W, C)`` conv/pool input)."""
    xi = x.astype(np.int64)
    if layer.kind == "avgpool":
        width = xi.shape[1]
        total = xi.sum(axis=1)
        half = width // 2
        # C's integer division truncates toward zero: (acc +- n/2) / n.
        num = np.where(total > 0, total + half, total - half)
        avg = np.sign(num) * (np.abs(num) // width)
        return np.clip(avg, layer.act_min, layer.act_max).astype(np.int8)
    assert layer.weight is not None and layer.bias is not None
    w = layer.weight.astype(np.int64)
    xi = xi - layer.input_zp
    if layer.kind == "dense":
        acc = xi.reshape(len(xi), -1) @ w.T
    else:
        kernel = w.shape[1]
        width = (xi.shape[1] - kernel) // layer.stride + 1
        idx = np.arange(width)[:, None] * layer.stride + np.arange(kernel)[None, :]
        patches = xi[:, idx, :].reshape(len(xi), width, -1)  # (N, W', K*C)
        acc = patches @ w.reshape(w.shape[0], -1).T
    acc = acc + layer.bias.astype(np.int64)
    out = multiply_by_quantized_multiplier(acc, layer.multiplier, layer.shift) + layer.output_zp
    return np.clip(out, layer.act_min, layer.act_max).astype(np.int8)


def run(model: Int8Model, x: np.ndarray, collect: bool = False) -> np.ndarray | list[np.ndarray]:
    """The int8 reference: int8 inputs ``(N, *input_shape)`` to int8 outputs ``(N, out)``."""
    x = np.asarray(x)
    if x.dtype != np.int8 or tuple(x.shape[1:]) != model.input_shape:
        raise ConfigError(
            f"{model.name} takes int8 inputs of shape (N, {model.input_shape}), "
            f"got {x.dtype}{tuple(x.shape)}"
        )
    h = x
    outs = []
    for layer in model.layers:
        h = run_layer(layer, h)
        outs.append(h)
    return outs if collect else h
