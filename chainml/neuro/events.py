"""Event-driven learning: a device adapts, and sends an update, only when its error grows.

Learning costs energy (every pass of the rule is a forward plus a write of the plastic synapses)
and so does the radio, so a device that is still well calibrated should neither learn nor talk.
Each round the device scores its current state on the few labelled samples it received (one
forward pass, which it pays for). An MSE over ten samples is noisy, so the trigger works on
averages: the mean of the first ``settle`` checks after an adaptation is the reference level,
and afterwards an exponentially weighted moving average of the checks is compared with
``ratio`` times that reference (and at least ``floor``). Crossing it fires: the device runs the
rule, sends the update and measures a new reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainml.errors import MetaLearningError


@dataclass(frozen=True)
class TriggerConfig:
    ratio: float = 1.5
    floor: float = 0.0
    smoothing: float = 0.5  # weight of the newest error in the moving average
    settle: int = 1  # checks averaged into the reference after each adaptation

    def __post_init__(self) -> None:
        if self.ratio < 1 or self.floor < 0 or not 0 < self.smoothing <= 1 or self.settle < 1:
            raise MetaLearningError(f"invalid trigger config: {self}")


class EventTrigger:
    """One device's trigger state (reference error and smoothed error)."""

    def __init__(self, config: TriggerConfig | None = None) -> None:
        self.config = config or TriggerConfig()
        self.fired = 0
        self._restart()

    def _restart(self) -> None:
        self._settling: list[float] = []
        self.reference: float | None = None
        self.smoothed: float | None = None

    def threshold(self) -> float | None:
        """The error level above which the device adapts (None while settling)."""
        if self.reference is None:
            return None
        return max(self.config.ratio * self.reference, self.config.floor)

    def observe(self, error: float) -> bool:
        """Feed this round's check error; True means adapt and send an update now."""
        cfg = self.config
        if self.reference is None:  # the first checks after an adaptation: the new normal
            self._settling.append(float(error))
            if len(self._settling) == cfg.settle:
                self.reference = self.smoothed = sum(self._settling) / cfg.settle
            return False
        self.smoothed = (1 - cfg.smoothing) * self.smoothed + cfg.smoothing * float(error)
        if self.smoothed > self.threshold():
            self.fired += 1
            self._restart()  # re-measured after the update
            return True
        return False

    def updated(self) -> None:
        """The device adapted for another reason (its buffer was full): re-measure."""
        self._restart()
