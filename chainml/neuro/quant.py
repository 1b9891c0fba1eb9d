"""Fixed-point bit depth with stochastic rounding, as neuromorphic chips store weights and state.

A ``b``-bit signed value has the levels ``q * step`` for integers ``q`` in ``[-(2^(b-1) - 1),
2^(b-1) - 1]`` (symmetric, like :mod:`chainml.meta.quant`'s int8), with ``step = range / qmax``.

Stochastic rounding rounds ``x / step`` up with probability equal to its fractional part, so the
rounding is unbiased: ``E[round(x)] = x``. That is what lets tiny plastic updates survive on a
low-precision synapse (Gupta et al. 2015, "Deep learning with limited numerical precision",
ICML; Loihi's learning engine rounds synaptic updates stochastically the same way, Davies et al.
2018, IEEE Micro 38(1)): with round-to-nearest an update below half a step is lost every time.
One-time writes (programming the meta-weights) use round-to-nearest, which halves the worst-case
error and has nothing to accumulate.

Every function takes the uniform noise ``u`` explicitly (no hidden RNG), so results are seeded
and reproducible. The rounding's gradient is straight-through (identity), as in
quantization-aware training, while saturation at the range keeps its true (zero) gradient.
"""

from __future__ import annotations

import torch

from chainml.errors import MetaLearningError

SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 16)


def qmax(bits: int) -> int:
    """Largest code of a symmetric ``bits``-bit signed value."""
    if bits not in SUPPORTED_BITS:
        raise MetaLearningError(f"bit depth must be one of {SUPPORTED_BITS}, got {bits}")
    return 2 ** (bits - 1) - 1


def quantize_fixed(
    x: torch.Tensor, bits: int, value_range: torch.Tensor | float, u: torch.Tensor | None
) -> torch.Tensor:
    """``x`` on the ``bits``-bit grid over ``[-value_range, value_range]`` (clipped).

    ``u`` holds uniform ``[0, 1)`` samples shaped like ``x`` for stochastic rounding; ``None``
    rounds to nearest. The gradient passes straight through.
    """
    top = qmax(bits)
    r = torch.as_tensor(value_range, dtype=x.dtype)
    step = torch.where(r > 0, r / top, torch.ones_like(r))
    # Saturation is real (zero gradient outside the range); only the rounding is bypassed.
    scaled = torch.clamp(x / step, -top, top)
    codes = torch.floor(scaled + u) if u is not None else torch.round(scaled)
    codes = torch.clamp(codes, -top, top)
    return (scaled + (codes - scaled).detach()) * step


def weight_range(w: torch.Tensor) -> torch.Tensor:
    """Per-tensor range of a weight matrix (its largest magnitude), detached: the chip's
    per-layer exponent is set when the weights are programmed, not learned through."""
    return w.detach().abs().amax()
