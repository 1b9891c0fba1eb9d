"""Vibration anomaly detection per machine (2-way classification: 0 normal, 1 bearing fault).

Input: one window of 128 accelerometer samples at 2,560 Hz (50 ms; a MEMS accelerometer such as
the ADXL345 or LIS3DH at that output data rate), shape ``(1, 128)`` in g. Each machine has:

* A shaft speed of 15-40 Hz (900-2,400 rpm, typical 2- and 4-pole induction motors) that
  jitters +-2% between windows, with 1x/2x/3x harmonics for unbalance, misalignment and
  looseness at machine-specific amplitudes.
* In half of the machines a benign gear-mesh tone at ``z * f_r`` (15-40 teeth); tones above
  the 1,280 Hz Nyquist frequency fold back, as without an anti-aliasing filter.
* White sensor noise at a machine-specific level (0.05-0.4 g).
* A rolling-element bearing with 7-13 balls and ball/pitch diameter ratio ``d/D`` in 0.15-0.3.
  Faults follow the standard kinematics (Randall & Antoni 2011, "Rolling element bearing
  diagnostics - a tutorial", MSSP 25(2), Eq. 1-2, contact angle 0):
  ``BPFO = n/2 f_r (1 - d/D)`` (outer race) and ``BPFI = n/2 f_r (1 + d/D)`` (inner race, whose
  impacts are amplitude-modulated at ``f_r`` as the defect rotates through the load zone). Each
  impact rings a machine-specific structural resonance (600-1,100 Hz) with an exponential decay of
  1.5-4 ms (McFadden & Smith 1984, "Model for the vibration produced by a single point defect in a
  rolling element bearing", JSV 96(1)), with 1-2% random slip in impact spacing.

A machine's fault type (outer or inner race) and its severity relative to its noise floor are
fixed; only a few fault windows are labelled per machine (K-shot support), which is why the
detector is adapted per machine.
"""

from __future__ import annotations

import numpy as np

from chainml.meta.tasks.base import Split, Task, TaskFamily

FS = 2560.0
WINDOW = 128


class VibrationTask(Task):
    def __init__(
        self, family: TaskFamily, seed: int, index: int, split: Split, p: dict[str, float]
    ) -> None:
        super().__init__(family, seed, index, split)
        self.p = p

    def sample_class(self, rng: np.random.Generator, label: int, n: int) -> np.ndarray:
        p = self.p
        t = np.arange(WINDOW) / FS
        fr = p["fr"] * rng.uniform(0.98, 1.02, size=(n, 1))
        x = np.zeros((n, WINDOW))
        for k, amp in ((1, p["a1"]), (2, p["a2"]), (3, p["a3"])):
            x += amp * np.sin(2 * np.pi * k * fr * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        if p["gear"] > 0:
            x += p["gear"] * np.sin(2 * np.pi * p["teeth"] * fr * t + rng.uniform(0, 6.3, (n, 1)))
        x += rng.normal(0.0, p["noise"], size=(n, WINDOW))
        if label == 1:
            x += self._impacts(rng, fr[:, 0], t)
        return x[:, None, :]

    def _impacts(self, rng: np.random.Generator, fr: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Resonance-ringing impacts at the fault frequency, vectorised over windows."""
        p = self.p
        inner = p["inner"] > 0.5
        fault_f = p["balls"] / 2 * fr * ((1 + p["d_over_D"]) if inner else (1 - p["d_over_D"]))
        period = 1.0 / fault_f[:, None]  # (n, 1)
        n_imp = int(np.ceil(t[-1] * fault_f.max())) + 2
        slip = rng.uniform(0.98, 1.02, size=(len(fr), n_imp))
        start = -rng.uniform(0.0, 1.0, size=(len(fr), 1)) * period
        times = start + np.cumsum(period * slip, axis=1)  # (n, n_imp)
        amp = np.full(times.shape, p["severity"])
        if inner:  # the defect passes through the load zone once per shaft turn
            phase = rng.uniform(0, 2 * np.pi, size=(len(fr), 1))
            amp = amp * 0.5 * (1 + np.cos(2 * np.pi * fr[:, None] * times + phase))
        dt = t[None, None, :] - times[:, :, None]  # (n, n_imp, L)
        ring = np.exp(-np.maximum(dt, 0.0) / p["decay"]) * np.sin(2 * np.pi * p["f_res"] * dt)
        return np.sum(np.where(dt >= 0, amp[:, :, None] * ring, 0.0), axis=1)


class VibrationFamily(TaskFamily):
    name = "vibration"
    kind = "classification"
    default_arch = "cnn-vibration"
    input_shape = (1, WINDOW)
    n_way = 2

    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        noise = rng.uniform(0.05, 0.4)
        a1 = rng.uniform(0.1, 1.0)
        p = {
            "fr": rng.uniform(15.0, 40.0),
            "a1": a1,
            "a2": a1 * rng.uniform(0.0, 0.5),
            "a3": a1 * rng.uniform(0.0, 0.3),
            "gear": rng.uniform(0.1, 0.5) if rng.random() < 0.5 else 0.0,
            "teeth": float(rng.integers(15, 41)),
            "noise": noise,
            "balls": float(rng.integers(7, 14)),
            "d_over_D": rng.uniform(0.15, 0.3),
            "inner": float(rng.random() < 0.5),
            "f_res": rng.uniform(600.0, 1100.0),
            "decay": rng.uniform(1.5e-3, 4e-3),
            "severity": noise * rng.uniform(1.0, 4.0),
        }
        return VibrationTask(self, seed, index, split, p)
