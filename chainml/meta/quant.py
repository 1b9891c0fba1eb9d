"""Symmetric int8 quantization of weights and updates, and fake-quant for int8-aware evaluation.

Rule (deterministic, identical in numpy and torch):

* ``scale = max|x| / 127`` in float32, per tensor or per output channel (axis 0); an all-zero
  tensor/channel gets ``scale = 1``.
* ``q = clip(round_half_to_even(x / scale), -127, 127)`` as int8 (``-128`` is never used, so the
  range is symmetric and negation is exact).
* ``x_hat = float32(q) * scale``; the error is at most ``scale / 2`` per element.

1-D tensors (biases) always use one scale: per-channel would give every element its own scale.
Both float32 division and multiplication are correctly rounded IEEE operations, so any machine
gets the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from chainml.errors import MetaLearningError
from chainml.meta.models import Params

QMAX = 127


@dataclass(frozen=True)
class QuantizedTensor:
    """int8 values with float32 scales (shape ``(1,)`` per tensor or ``(C,)`` per channel)."""

    values: np.ndarray
    scales: np.ndarray
    per_channel: bool

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.scales.nbytes)


def _scales(amax: np.ndarray) -> np.ndarray:
    amax = amax.astype(np.float32)
    return np.where(amax > 0, amax / np.float32(QMAX), np.float32(1.0)).astype(np.float32)


def quantize_array(x: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """int8 codes of ``x`` given broadcastable float32 ``scales`` (round half to even)."""
    q = np.rint(x.astype(np.float32) / scales)
    return np.clip(q, -QMAX, QMAX).astype(np.int8)


def quantize_tensor(x: np.ndarray | torch.Tensor, per_channel: bool = False) -> QuantizedTensor:
    """Quantize one tensor; ``per_channel`` uses one scale per slice along axis 0."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise MetaLearningError("cannot quantize a tensor containing NaN or infinity")
    channel = per_channel and a.ndim >= 2
    if channel:
        scales = _scales(np.abs(a).reshape(a.shape[0], -1).max(axis=1))
        codes = quantize_array(a, scales.reshape((-1,) + (1,) * (a.ndim - 1)))
    else:
        scales = _scales(np.array([np.abs(a).max() if a.size else 0.0]))
        codes = quantize_array(a, scales[0])
    return QuantizedTensor(codes, scales, channel)


def dequantize_tensor(q: QuantizedTensor) -> np.ndarray:
    """float32 reconstruction ``q * scale``."""
    s = q.scales.reshape((-1,) + (1,) * (q.values.ndim - 1)) if q.per_channel else q.scales[0]
    return (q.values.astype(np.float32) * s).astype(np.float32)


def quantize_params(
    params: Mapping[str, torch.Tensor], per_channel: bool = True
) -> dict[str, QuantizedTensor]:
    """int8 weights for flashing to a device (one entry per parameter, spec order kept)."""
    return {k: quantize_tensor(v, per_channel) for k, v in params.items()}


def dequantize_params(q: Mapping[str, QuantizedTensor]) -> Params:
    """float32 weights back from int8 (what the device actually computes with)."""
    return {k: torch.from_numpy(dequantize_tensor(v)) for k, v in q.items()}


def fake_quant(t: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Quantize-dequantize in torch (vmap-safe); bit-identical to the numpy path."""
    if per_channel and t.dim() >= 2:
        amax = t.abs().reshape(t.shape[0], -1).amax(dim=1).reshape((-1,) + (1,) * (t.dim() - 1))
    else:
        amax = t.abs().amax()
    scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
    return torch.clamp(torch.round(t / scale), -QMAX, QMAX) * scale


def fake_quant_params(params: Mapping[str, torch.Tensor], per_channel: bool = True) -> Params:
    """The int8 round trip of every parameter (quantization-aware evaluation)."""
    return {k: fake_quant(v, per_channel) for k, v in params.items()}
