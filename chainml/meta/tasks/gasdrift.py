"""Gas-concentration regression from an event-based sensor array, with sensor ageing (drift).

An event-style task for spiking models: the device never sees analog samples, only ON/OFF
events from a send-on-delta (level-crossing) encoder, the way event-based sensor front ends
feed neuromorphic chips without an ADC. One task is one device with its own sensor array:

* Four metal-oxide (MOX) gas sensors whose response follows the usual power law in the
  concentration, ``g_k * c ** beta_k`` (MOX conductance grows as ``c ** beta`` with beta in
  0.3-0.9; Barsan & Weimar 2001, J. Electroceramics 7(3)), with per-sensor gains (manufacturing
  spread, one sensor in four devices nearly dead), exponents and first-order rise times
  (1-6 time bins), plus sensor noise (0.1-0.4 of the encoder step per bin).
* One exposure per sample: the gas arrives at a random onset (bins 0-3) and the response rises
  towards its steady state over ``T = 16`` bins.
* Each sensor's signal goes through a level-crossing encoder with step ``delta``: an ON event per
  step crossed upward, an OFF event per step crossed downward, counted per bin. The input is
  ``(T, 8)``: ON and OFF event counts for the four sensors.
* The target is the concentration on a 0-5 scale (e.g. tens of ppm of CO).
* **Drift.** MOX sensors lose sensitivity as they age and get poisoned (the effect behind the
  UCI "gas sensor array drift" data, Vergara et al. 2012, Sensors & Actuators B 166). A device's
  gains decay with its stream position ``draw`` (the swarm's round):
  ``g_k(draw) = g_k * (1 - a * (1 - exp(-draw / tau_age)))``, ``a`` in 0.3-0.6 and ``tau_age``
  in 40-120 draws, so a calibration goes stale over tens of rounds; the drift is bounded, so any
  draw is a valid input. ``GasDriftFamily(ageing=False)`` is the stationary control, and
  :meth:`GasDriftTask.poisoned` an abrupt sensitivity loss.

The mapping from events to concentration differs per device (gains, exponents, dead sensors),
which a device learns from a few reference exposures (K-shot support), hence meta-learning.
"""

from __future__ import annotations

import numpy as np

from chainml.errors import MetaLearningError
from chainml.meta.tasks.base import Episode, Split, Task, TaskFamily, _f32

N_SENSORS = 4
T_BINS = 16
N_CHANNELS = 2 * N_SENSORS  # ON and OFF events per sensor
Y_SCALE = 5.0


def level_crossing_events(signal: np.ndarray) -> np.ndarray:
    """ON/OFF event counts per bin of a send-on-delta encoder (signal in units of the step).

    ``signal`` is ``(n, T, sensors)``; the encoder starts at level ``floor(signal[:, 0])`` and
    emits one event per level crossed, so ON minus OFF events over the window equals the net
    level change. Returns ``(n, T, 2 * sensors)``: ON counts, then OFF counts.
    """
    level = np.floor(signal)
    prev = np.concatenate([level[:, :1], level[:, :-1]], axis=1)
    step = level - prev
    return np.concatenate([np.maximum(step, 0.0), np.maximum(-step, 0.0)], axis=-1)


class GasDriftTask(Task):
    def __init__(
        self, family: TaskFamily, seed: int, index: int, split: Split, p: dict[str, np.ndarray]
    ) -> None:
        super().__init__(family, seed, index, split)
        self.p = p

    def gains_at(self, draw: int) -> np.ndarray:
        """Sensor gains after ``draw`` stream positions of ageing (none if the family is not
        ageing)."""
        p = self.p
        if not getattr(self.family, "ageing", True):
            return p["gain"]
        decay = 1.0 - p["age_amount"] * (1.0 - np.exp(-float(draw) / p["age_tau"]))
        return p["gain"] * decay

    def poisoned(self, factor: float) -> GasDriftTask:
        """The same device after an abrupt sensitivity loss (catalyst poisoning, e.g. by
        silicone vapour): every gain times ``factor``; same seed, index and sample stream."""
        if not 0 < factor <= 1:
            raise MetaLearningError(f"poisoning factor must be in (0, 1], got {factor}")
        p = {**self.p, "gain": self.p["gain"] * factor}
        return GasDriftTask(self.family, self.seed, self.index, self.split, p)

    def sample_at(
        self, rng: np.random.Generator, n: int, draw: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` exposures ``(events (n, T, 8), concentration (n, 1))`` at stream position draw."""
        p = self.p
        c = rng.uniform(0.0, 1.0, size=(n, 1, 1))
        onset = rng.uniform(0.0, 3.0, size=(n, 1, 1))
        t = np.arange(T_BINS, dtype=np.float64)[None, :, None]
        rise = 1.0 - np.exp(-np.maximum(t - onset, 0.0) / p["tau"][None, None, :])
        steady = self.gains_at(draw)[None, None, :] * c ** p["beta"][None, None, :]
        noise = rng.normal(0.0, 1.0, size=(n, T_BINS, N_SENSORS)) * p["noise"][None, None, :]
        start = rng.uniform(0.0, 1.0, size=(n, 1, N_SENSORS))  # encoder phase at window start
        events = level_crossing_events(start + steady * rise + noise)
        return events, Y_SCALE * c[:, 0, :]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sample_at(rng, n, 0)

    def episode(self, shots: int, queries: int, draw: int = 0) -> Episode:
        """Support and query exposures from draw ``draw``, with the sensors aged to ``draw``."""
        if shots < 1 or queries < 1:
            raise MetaLearningError(f"need shots>=1 and queries>=1, got {shots}, {queries}")
        rng = self.stream(draw)
        xs, ys = self.sample_at(rng, shots, draw)
        xq, yq = self.sample_at(rng, queries, draw)
        return Episode(_f32(xs), _f32(ys), _f32(xq), _f32(yq))


class GasDriftFamily(TaskFamily):
    name = "gasdrift"
    kind = "regression"
    default_arch = "snn-gasdrift"
    input_shape = (T_BINS, N_CHANNELS)

    def __init__(self, ageing: bool = True) -> None:
        self.ageing = ageing  # False: a stationary stream (the drift-free control)

    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        gain = rng.uniform(4.0, 14.0, size=N_SENSORS)
        if rng.random() < 0.25:
            gain[rng.integers(N_SENSORS)] = rng.uniform(0.0, 1.0)  # a nearly dead sensor
        p = {
            "gain": gain,
            "beta": rng.uniform(0.3, 0.9, size=N_SENSORS),
            "tau": rng.uniform(1.0, 6.0, size=N_SENSORS),
            "noise": rng.uniform(0.1, 0.4, size=N_SENSORS),
            "age_amount": np.float64(rng.uniform(0.3, 0.6)),
            "age_tau": np.float64(rng.uniform(40.0, 120.0)),
        }
        return GasDriftTask(self, seed, index, split, p)
