"""Post-training int8 quantization of a float graph, the way TFLite's converter does it.

- Weights: symmetric int8 per output channel, ``scale = max|w| / 127`` (zero point 0); with
  ``weight_bits=4`` for the body's layers, ``scale = max|w| / 7`` and values in [-7, 7] (int8
  arithmetic unchanged; the C build stores them two per byte).
- Biases: int32 at ``scale = input_scale * weight_scale`` per channel.
- Activations and the input: asymmetric int8 per tensor, from the min/max seen on
  calibration data, widened to include 0 (so ReLU's zero is exact).
- Average pooling keeps its input's scale and zero point (TFLM's int8 kernel does not rescale).

Multipliers are derived exactly as TFLM's ``PopulateConvolutionQuantizationParams`` does, in
double precision from the float32 scales stored in the flatbuffer, so the reference, the C code
and the interpreter requantize with the same integers.
"""

from __future__ import annotations

import numpy as np
import torch

from chainml.errors import ConfigError
from chainml.mcu.graph import Graph, forward
from chainml.mcu.int8 import Int8Model, Q8Layer, quantize_multiplier


def affine_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point covering ``[min(lo, 0), max(hi, 0)]``."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


def requant(input_scale: float, weight_scales: np.ndarray, output_scale: float):
    """Per-channel (M, shift) from float32 scales, computed in double as TFLM does."""
    ms, shifts = [], []
    for ws in weight_scales:
        real = float(np.float32(input_scale)) * float(ws) / float(np.float32(output_scale))
        m, s = quantize_multiplier(real)
        ms.append(m)
        shifts.append(s)
    return np.array(ms, dtype=np.int32), np.array(shifts, dtype=np.int32)


def weight_levels(bits: int) -> int:
    """The largest magnitude of a symmetric ``bits``-bit weight: 127 for int8, 7 for int4."""
    if bits not in (4, 8):
        raise ConfigError(f"weights quantize to 4 or 8 bits, not {bits}")
    return 2 ** (bits - 1) - 1


def quantize_weights(weight: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel quantization: (int8 values, float32 scales)."""
    levels = np.float32(weight_levels(bits))
    o = weight.shape[0]
    amax = np.abs(weight.reshape(o, -1)).max(axis=1).astype(np.float32)
    scales = np.where(amax > 0, amax / levels, np.float32(1.0)).astype(np.float32)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    q = np.clip(np.rint(weight / scales.reshape(shape)), -levels, levels).astype(np.int8)
    return q, scales


def quantize_graph(graph: Graph, calibration: np.ndarray, body_bits: int = 8) -> Int8Model:
    """Quantize ``graph`` with activation ranges from ``calibration`` inputs (channels last);
    the body's weights take ``body_bits`` bits (the head, which devices re-fit, keeps 8)."""
    if len(calibration) < 2:
        raise ConfigError("post-training quantization needs at least 2 calibration inputs")
    weight_levels(body_bits)
    last = len(graph.layers) - 1
    x = torch.from_numpy(np.asarray(calibration, dtype=np.float32))
    with torch.no_grad():
        acts = [x, *forward(graph.layers, x, collect=True)]
    in_scale, in_zp = affine_params(float(x.min()), float(x.max()))
    scale, zp = in_scale, in_zp
    layers: list[Q8Layer] = []
    for i, (la, out) in enumerate(zip(graph.layers, acts[1:], strict=True)):
        if la.kind == "avgpool":
            layers.append(Q8Layer("avgpool", zp, zp, -128, 127, scale))
            continue
        assert la.weight is not None and la.bias is not None
        bits = 8 if i == last else body_bits
        w_q, w_scales = quantize_weights(la.weight, bits)
        bias_scales = np.float64(np.float32(scale)) * w_scales.astype(np.float64)
        b_q = np.clip(np.rint(la.bias / bias_scales), -(2**31), 2**31 - 1).astype(np.int32)
        out_scale, out_zp = affine_params(float(out.min()), float(out.max()))
        m, s = requant(scale, w_scales, out_scale)
        act_min = max(-128, out_zp) if la.relu else -128
        layer = Q8Layer(
            la.kind, zp, out_zp, act_min, 127, out_scale, w_q, w_scales, b_q, m, s,
            la.stride, la.relu, bits,
        )  # fmt: skip
        layers.append(layer)
        scale, zp = out_scale, out_zp
    return Int8Model(
        graph.name, graph.input_shape, in_scale, in_zp, tuple(layers), graph.task_kind,
        dict(graph.meta),
    )  # fmt: skip
