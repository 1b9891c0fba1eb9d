"""The meta-regulator: per device, watch energy and spike density, recalibrate on drift.

Labels are rare on a deployed sensor, but the chip's own activity is free to observe: the
energy it spends per inference (synaptic events) and its spike density both move when the
input distribution moves. After every (re)calibration the regulator spends ``warmup`` rounds
learning the device's normal level of both signals (mean and spread); afterwards a round whose
signal leaves ``mean +- max(z * sd, tolerance * mean)`` counts as out of distribution, and
``patience`` such rounds in a row trigger a recalibration: the device requests a few labelled
samples, resets its plastic traces to the meta-learned state and runs the rule from scratch.
The regulator then re-learns the normal level, so a device keeps working in its new environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chainml.errors import MetaLearningError


@dataclass(frozen=True)
class RegulatorConfig:
    warmup: int = 3
    z: float = 4.0
    tolerance: float = 0.2
    patience: int = 1

    def __post_init__(self) -> None:
        if self.warmup < 2 or self.z <= 0 or self.tolerance < 0 or self.patience < 1:
            raise MetaLearningError(f"invalid regulator config: {self}")


@dataclass(frozen=True)
class Observation:
    round: int
    energy_j: float
    spike_density: float
    out_of_range: bool
    recalibrate: bool


class MetaRegulator:
    """One device's regulator state."""

    def __init__(self, config: RegulatorConfig | None = None) -> None:
        self.config = config or RegulatorConfig()
        self.recalibrations = 0
        self.log: list[Observation] = []
        self._reset()

    def _reset(self) -> None:
        self._window: list[tuple[float, float]] = []
        self._strikes = 0

    def _outside(self, value: float, values: list[float]) -> bool:
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return abs(value - mean) > max(self.config.z * sd, self.config.tolerance * abs(mean))

    def observe(self, round_: int, energy_j: float, spike_density: float) -> bool:
        """Feed one round's inference energy and spike density; True means recalibrate now."""
        cfg = self.config
        outside = False
        if len(self._window) >= cfg.warmup:
            energies = [e for e, _ in self._window]
            densities = [d for _, d in self._window]
            outside = self._outside(energy_j, energies) or self._outside(spike_density, densities)
        else:
            self._window.append((float(energy_j), float(spike_density)))
        self._strikes = self._strikes + 1 if outside else 0
        fire = self._strikes >= cfg.patience
        self.log.append(Observation(round_, energy_j, spike_density, outside, fire))
        if fire:
            self.recalibrations += 1
            self._reset()
        return fire

    def recalibrated(self) -> None:
        """Tell the regulator the device recalibrated for another reason (forget the normal)."""
        self._reset()
