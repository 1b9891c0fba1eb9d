"""What one round costs a device: compute (MACs), radio bytes, airtime and energy.

MACs are counted on the real model template (one hook per Linear/Conv1d layer), so a new
architecture needs no hand-written formula. A backward pass costs about twice the forward MACs
(one product for the input gradient, one for the weight gradient), the usual estimate for dense
and convolutional layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from chainml.device.footprint import footprint
from chainml.device.profile import HardwareProfile
from chainml.errors import BudgetError
from chainml.meta.models import get_model

BACKWARD_FACTOR = 2


@cache
def forward_macs(arch_id: str) -> int:
    """Multiply-accumulates of one single-sample forward pass."""
    model = get_model(arch_id)
    total = 0

    def count(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features
        elif isinstance(module, nn.Conv1d):
            per_output = (module.in_channels // module.groups) * module.kernel_size[0]
            total += per_output * module.out_channels * output.shape[-1]

    layers = [m for m in model.module.modules() if isinstance(m, nn.Linear | nn.Conv1d)]
    handles = [m.register_forward_hook(count) for m in layers]
    try:
        with torch.no_grad():
            model.module(torch.zeros(1, *model.arch.input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return total


def adaptation_macs(arch_id: str, steps: int, samples_per_step: int, eval_samples: int) -> int:
    """Forward + backward for every adaptation step, plus forward passes to score the result."""
    fwd = forward_macs(arch_id)
    return steps * samples_per_step * fwd * (1 + BACKWARD_FACTOR) + eval_samples * fwd


@dataclass(frozen=True)
class RoundCost:
    """One node's resource use in one round."""

    macs: int
    compute_s: float
    compute_j: float
    bytes_down: int
    bytes_up: int
    airtime_s: float
    radio_j: float

    @property
    def energy_j(self) -> float:
        return self.compute_j + self.radio_j


def check_fits(profile: HardwareProfile, arch_id: str, batch: int = 1) -> None:
    """Refuse work the device cannot hold: the int8 firmware in flash, its inference buffers
    and stack in RAM, the firmware with the device protocol's head re-fit (flash and RAM,
    measured on a Cortex-M4 build where available, see :mod:`chainml.device.footprint`), and
    the float32 gradient-adaptation state in RAM (estimate)."""
    spec = get_model(arch_id).spec
    fp = footprint(arch_id)
    need = {
        f"flash ({fp.source})": (fp.flash_bytes, profile.flash_bytes),
        f"inference RAM ({fp.source})": (fp.ram_inference_bytes, profile.ram_bytes),
        "adaptation RAM (estimate)": (spec.ram_adapt_bytes(batch), profile.ram_bytes),
    }
    if fp.refit_flash_bytes is not None and fp.refit_ram_bytes is not None:
        need["flash with the head re-fit (measured)"] = (fp.refit_flash_bytes, profile.flash_bytes)
        need["head re-fit RAM (measured)"] = (fp.refit_ram_bytes, profile.ram_bytes)
    for what, (used, limit) in need.items():
        if used > limit:
            raise BudgetError(
                f"device {profile.name} refuses the round: {arch_id} needs {used} bytes of "
                f"{what}, the device has {limit}; pick a smaller architecture or batch"
            )


def round_cost(profile: HardwareProfile, macs: int, bytes_down: int, bytes_up: int) -> RoundCost:
    down = profile.radio.receive(bytes_down)
    up = profile.radio.send(bytes_up)
    return RoundCost(
        macs=macs,
        compute_s=profile.compute_time_s(macs),
        compute_j=profile.compute_energy_j(macs),
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        airtime_s=down.airtime_s + up.airtime_s,
        radio_j=down.energy_j + up.energy_j,
    )


def int8_download_bytes(arch_id: str) -> int:
    """What a device downloads for the meta-weights: the int8 model it keeps in flash."""
    return get_model(arch_id).spec.flash_bytes_int8
