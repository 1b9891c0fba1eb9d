"""Leaky integrate-and-fire neurons with a surrogate gradient written in plain tensor ops.

Why not snnTorch's neurons: its surrogates are old-style ``autograd.Function`` classes without
``setup_context``, so ``torch.func.grad`` and ``vmap`` (which the engine's ``adapt``, MAML and
the node step are built on) fail on them (NOTES.md, "Spiking networks"). A straight-through
surrogate needs no custom autograd at all: the forward value is the Heaviside step, the gradient
is that of a fast sigmoid (SuperSpike, Zenke & Ganguli 2018, Neural Computation 30(6)):

    spike = f(u) + (H(u) - f(u)).detach(),  f(u) = 0.5 * k * u / (1 + k |u|),  u = v - threshold

so ``d spike / d v = 0.5 * k / (1 + k |u|)^2``. Only elementwise ops and ``detach`` are used,
which every torch.func transform supports.

Dynamics (discrete time, reset by subtraction, as on Loihi and in snnTorch's ``Leaky``):

    v[t] = beta * v[t-1] + I[t] - threshold * s[t-1],   s[t] = H(v[t] - threshold)

:func:`lif_scan` is the single implementation; the ``nn.Module`` wrappers below (used by the
registered ``snn-*`` architectures) and the on-chip simulation in :mod:`chainml.neuro.network`
both call it, the latter with a hook that quantizes the membrane and injects noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

SURROGATE_SLOPE = 5.0
BETA = 0.8  # membrane decay per time step (time constant ~4.5 steps)
THRESHOLD = 1.0

StateHook = Callable[[torch.Tensor, int], torch.Tensor]


def spike_fn(u: torch.Tensor, slope: float = SURROGATE_SLOPE) -> torch.Tensor:
    """Heaviside forward, fast-sigmoid gradient backward (straight-through surrogate)."""
    soft = 0.5 * slope * u / (1.0 + slope * u.abs())
    return soft + ((u > 0).to(u.dtype) - soft).detach()


def lif_scan(
    current: torch.Tensor,
    *,
    time_dim: int,
    beta: float = BETA,
    threshold: float = THRESHOLD,
    state_hook: StateHook | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run LIF neurons over the time axis of ``current``; returns ``(spikes, membrane)``.

    ``state_hook(v, t)`` (optional) transforms the membrane after each integration, before the
    threshold: the chip simulation uses it for bit-depth quantization and membrane noise.
    """
    steps = current.unbind(time_dim)
    v = torch.zeros_like(steps[0])
    s = torch.zeros_like(steps[0])
    spikes, membrane = [], []
    for t, i_t in enumerate(steps):
        v = beta * v + i_t - threshold * s
        if state_hook is not None:
            v = state_hook(v, t)
        s = spike_fn(v - threshold)
        spikes.append(s)
        membrane.append(v)
    return torch.stack(spikes, time_dim), torch.stack(membrane, time_dim)


class LIF(nn.Module):
    """LIF layer over inputs shaped ``(..., T, features)``; outputs spikes of the same shape."""

    def __init__(self, beta: float = BETA, threshold: float = THRESHOLD) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        spikes, _ = lif_scan(current, time_dim=-2, beta=self.beta, threshold=self.threshold)
        return spikes


class SpikeRate(nn.Module):
    """Mean over time of ``(..., T, features)`` spikes: the rate code a linear readout reads."""

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return spikes.mean(dim=-2)


class RepeatInTime(nn.Module):
    """Present a static input as a constant current for ``steps`` steps (direct encoding)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-2).expand(*x.shape[:-1], self.steps, x.shape[-1])
