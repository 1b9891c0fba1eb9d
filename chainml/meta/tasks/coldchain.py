"""Cold-chain temperature excursion detection per shipment (2-way: 0 compliant, 1 excursion).

Input: the last 24 logger readings at 5-minute intervals (2 hours), in degC / 10, shape ``(24,)``.
A window is an *excursion* when the reading stays above the shipment's upper limit for at least
the product's allowed time, consecutively. The limit and the allowed time depend on the product
class, which the device does not see, so each shipment needs its own decision rule:

* Pharmaceuticals, 2-8 degC, setpoint 4-6 degC, 30 minutes allowed (WHO TRS 961 Annex 9,
  "Model guidance for the storage and transport of time- and temperature-sensitive
  pharmaceutical products"; EU GDP guidelines 2013/C 343/01).
* Controlled room temperature pharmaceuticals, 15-25 degC, setpoint 18-21 degC, 60 minutes.
* Chilled fresh food, 0-5 degC, setpoint 1.5-3 degC, 60 minutes (EU Reg. 852/2004 chill chain).
* Frozen food, at or below -18 degC, setpoint -23 to -20 degC, 30 minutes (Directive 89/108/EEC).

Signal model: reefer compressor cycling (0.3-1.0 degC amplitude, 20-45 minute period), a
per-shipment sensor offset (sd 0.3 degC) and noise (0.05-0.2 degC), 0.1 degC logger resolution
(typical of USB/BLE data loggers), door openings (short +1.5-5 degC spikes that recover within
5-10 minutes and are *not* excursions), near-misses that approach or briefly cross the limit,
and true excursions (reefer failure or a warm dock: a ramp over 10-40 minutes to 0.5-4 degC
above the limit).
"""

from __future__ import annotations

import numpy as np

from chainml.errors import MetaLearningError
from chainml.meta.tasks.base import Split, Task, TaskFamily

WINDOW = 24
STEP_MIN = 5.0
# (probability, setpoint low, setpoint high, upper limit, allowed minutes)
PRODUCTS = (
    (0.45, 4.0, 6.0, 8.0, 30.0),
    (0.15, 18.0, 21.0, 25.0, 60.0),
    (0.25, 1.5, 3.0, 5.0, 60.0),
    (0.15, -23.0, -20.0, -18.0, 30.0),
)


def longest_run_above(x: np.ndarray, limit: float) -> np.ndarray:
    """Longest run of consecutive readings strictly above ``limit``, per row.

    Readings and limit are compared on the logger's 0.1 degC grid (as integers), so float
    round-off (e.g. after a float32 round trip) can never flip a label.
    """
    above = np.rint(np.asarray(x) * 10.0).astype(np.int64) > round(limit * 10)
    run = np.zeros(x.shape[0], dtype=np.int64)
    best = np.zeros(x.shape[0], dtype=np.int64)
    for j in range(x.shape[1]):
        run = np.where(above[:, j], run + 1, 0)
        best = np.maximum(best, run)
    return best


class ColdChainTask(Task):
    def __init__(
        self, family: TaskFamily, seed: int, index: int, split: Split, p: dict[str, float]
    ) -> None:
        super().__init__(family, seed, index, split)
        self.p = p

    def label(self, readings_c: np.ndarray) -> np.ndarray:
        """The compliance rule on readings in degC: 1 if an excursion occurred."""
        allowed = round(self.p["allowed_min"] / STEP_MIN)
        return (longest_run_above(readings_c, self.p["limit"]) >= allowed).astype(np.int64)

    def _candidates(self, rng: np.random.Generator, n: int, excursion: bool) -> np.ndarray:
        p = self.p
        t = np.arange(WINDOW, dtype=np.float64)
        period = p["cycle_min"] / STEP_MIN
        x = (
            p["setpoint"]
            + p["offset"]
            + p["cycle_amp"] * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, (n, 1)))
        )
        door = rng.random((n, 1)) < 0.5
        t0 = rng.integers(0, WINDOW, (n, 1))
        tau = rng.uniform(1.0, 2.0, (n, 1))
        dt = t - t0
        x += door * rng.uniform(1.5, 5.0, (n, 1)) * np.where(dt >= 0, np.exp(-dt / tau), 0.0)
        headroom = p["limit"] - (p["setpoint"] + p["offset"])
        if excursion:
            over = rng.uniform(0.5, 4.0, (n, 1))
        else:  # near misses: stay below, or cross only briefly
            over = np.where(
                rng.random((n, 1)) < 0.5,
                -rng.uniform(0.2, 1.5, (n, 1)),
                rng.uniform(0.3, 2.0, (n, 1)),
            )
        rate = (headroom + np.abs(over)) / rng.uniform(2.0, 8.0, (n, 1))  # reach peak in 2-8 reads
        start = rng.integers(-8, WINDOW - 2, (n, 1))
        length = rng.integers(2, WINDOW + 8, (n, 1))
        ramp = np.clip((t - start) * rate, 0.0, headroom + over)
        ramp = np.where(t < start + length, ramp, 0.0)
        event = rng.random((n, 1)) < (1.0 if excursion else 0.6)
        x += event * ramp
        x += rng.normal(0.0, p["noise"], (n, WINDOW))
        return np.round(x * 10.0) / 10.0  # logger resolution 0.1 degC

    def sample_class(self, rng: np.random.Generator, label: int, n: int) -> np.ndarray:
        out: list[np.ndarray] = []
        have = 0
        for _ in range(50):
            cand = self._candidates(rng, 4 * n, excursion=label == 1)
            keep = cand[self.label(cand) == label]
            out.append(keep)
            have += len(keep)
            if have >= n:
                return (np.concatenate(out)[:n] / 10.0).astype(np.float64)
        raise MetaLearningError(f"could not draw {n} windows of class {label} for {self.p}")


class ColdChainFamily(TaskFamily):
    name = "coldchain"
    kind = "classification"
    default_arch = "mlp-coldchain"
    input_shape = (WINDOW,)
    n_way = 2

    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        probs = np.array([row[0] for row in PRODUCTS])
        _, lo, hi, limit, allowed = PRODUCTS[int(rng.choice(len(PRODUCTS), p=probs))]
        p = {
            "setpoint": rng.uniform(lo, hi),
            "limit": limit,
            "allowed_min": allowed,
            "offset": rng.normal(0.0, 0.3),
            "cycle_amp": rng.uniform(0.3, 1.0),
            "cycle_min": rng.uniform(20.0, 45.0),
            "noise": rng.uniform(0.05, 0.2),
        }
        return ColdChainTask(self, seed, index, split, p)
