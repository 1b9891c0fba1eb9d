"""The chip conditions a spiking device runs under: bit depth, noise and their random draws.

One :class:`ChipConfig` describes the hardware in the loop, and the same object is used for
noise-injected meta-training and for evaluation, so a model is scored under the conditions it
will meet. ``bits=None`` is the float reference (no quantization); noise levels of zero switch
the noise off. :class:`ChipState` carries the seeded generator that every stochastic rounding
and every noise sample comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from chainml.errors import MetaLearningError
from chainml.neuro.lif import THRESHOLD
from chainml.neuro.noise import membrane_noise, synaptic_noise
from chainml.neuro.quant import qmax, quantize_fixed, weight_range


@dataclass(frozen=True)
class ChipConfig:
    """Bit depth of weights, plastic traces and membrane; synaptic and membrane noise levels.

    ``membrane_range`` is the representable membrane interval ``[-r, r]``; with reset by
    subtraction the membrane stays well inside ``2 * threshold``.
    """

    bits: int | None = None
    synaptic_sigma: float = 0.0
    membrane_sigma: float = 0.0
    membrane_range: float = 2.0 * THRESHOLD

    def __post_init__(self) -> None:
        if self.bits is not None:
            qmax(self.bits)  # raises on an unsupported depth
        if self.synaptic_sigma < 0 or self.membrane_sigma < 0 or self.membrane_range <= 0:
            raise MetaLearningError(f"invalid chip config: {self}")

    @property
    def ideal(self) -> bool:
        return self.bits is None and self.synaptic_sigma == 0 and self.membrane_sigma == 0

    def at_bits(self, bits: int | None) -> ChipConfig:
        return replace(self, bits=bits)

    def noiseless(self) -> ChipConfig:
        return replace(self, synaptic_sigma=0.0, membrane_sigma=0.0)


FLOAT = ChipConfig()


class ChipState:
    """A chip config plus the seeded generator its stochastic parts draw from.

    ``seed`` is one seed for a whole batch of tasks, or one seed per task (a sequence): then
    task ``k``'s draws come from its own generator, so a device's noise and rounding do not
    depend on which other devices share its batch (what the swarm's node step needs).
    """

    def __init__(self, config: ChipConfig, seed: int | Sequence[int]) -> None:
        self.config = config
        seeds = [seed] if isinstance(seed, int) else list(seed)
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.per_task = not isinstance(seed, int)

    def _draw(self, like: torch.Tensor, fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        if not self.per_task:
            return fn(like.shape, generator=self.gens[0], dtype=like.dtype)
        if like.shape[0] != len(self.gens):
            raise MetaLearningError(f"{len(self.gens)} chip seeds for {like.shape[0]} tasks")
        return torch.stack([fn(like.shape[1:], generator=g, dtype=like.dtype) for g in self.gens])

    def _uniform(self, like: torch.Tensor) -> torch.Tensor:
        return self._draw(like, torch.rand)

    def _normal(self, like: torch.Tensor) -> torch.Tensor:
        return self._draw(like, torch.randn)

    def program(self, w: torch.Tensor) -> torch.Tensor:
        """Write meta-weights to the chip once: round to nearest at the chip's bit depth."""
        bits = self.config.bits
        return w if bits is None else quantize_fixed(w, bits, weight_range(w), None)

    def store_trace(self, h: torch.Tensor, clip: float) -> torch.Tensor:
        """Store an updated plastic trace: clipped, then stochastically rounded."""
        h = torch.clamp(h, -clip, clip)
        bits = self.config.bits
        return h if bits is None else quantize_fixed(h, bits, clip, self._uniform(h))

    def read_synapses(self, w: torch.Tensor) -> torch.Tensor:
        """One read of the synaptic array: multiplicative synaptic noise."""
        sigma = self.config.synaptic_sigma
        return synaptic_noise(w, sigma, self._normal(w) if sigma > 0 else None)

    def membrane(self, v: torch.Tensor, _t: int) -> torch.Tensor:
        """Membrane after integration: noise, then stochastic rounding to the bit depth."""
        cfg = self.config
        v = membrane_noise(v, cfg.membrane_sigma, self._normal(v) if cfg.membrane_sigma else None)
        if cfg.bits is None:
            return v
        return quantize_fixed(v, cfg.bits, cfg.membrane_range, self._uniform(v))
