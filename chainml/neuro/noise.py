"""Analog non-idealities injected during meta-training and evaluation.

* Synaptic noise: every read of a synapse is off by a multiplicative Gaussian factor
  ``w * (1 + sigma_w * n)``, the device-to-device and cycle-to-cycle variation of memristive and
  analog synapses (a few percent to tens of percent; Joshi et al. 2020, "Accurate deep neural
  network inference using computational phase-change memory", Nature Communications 11, who
  also show that injecting such noise during training is what makes the network robust).
* Membrane noise: additive Gaussian noise ``sigma_v * n`` on the membrane potential at every time
  step (thermal and shot noise of analog neurons, and the jitter of mixed-signal chips).

The Gaussian samples ``n`` are passed in, drawn from a seeded ``torch.Generator`` by the caller.
"""

from __future__ import annotations

import torch


def synaptic_noise(w: torch.Tensor, sigma: float, n: torch.Tensor | None) -> torch.Tensor:
    """``w * (1 + sigma * n)``; the identity when ``sigma == 0`` or ``n is None``."""
    if sigma == 0 or n is None:
        return w
    return w * (1.0 + sigma * n)


def membrane_noise(v: torch.Tensor, sigma: float, n: torch.Tensor | None) -> torch.Tensor:
    """``v + sigma * n``; the identity when ``sigma == 0`` or ``n is None``."""
    if sigma == 0 or n is None:
        return v
    return v + sigma * n
