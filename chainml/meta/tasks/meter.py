"""Smart-meter load forecasting per household (regression; one household = one task).

The device forecasts a household's hourly mean load (kW) from calendar features and the outdoor
temperature forecast: ``[sin, cos](2 pi h / 24)``, ``[sin, cos](4 pi h / 24)``,
``[sin, cos](2 pi d / 7)``, a weekend flag and ``temperature / 10``. The load itself is a
per-household profile that a shared model cannot know in advance, hence meta-learning:

* Base load 0.1-0.4 kW (refrigeration, standby) and a mean of roughly 0.3-0.5 kW, in line with
  Ofgem's typical domestic consumption values (2,700-3,600 kWh/yr).
* Two daily peaks, morning (06-09 h) and evening (17-21 h, the larger one), plus a daytime
  occupancy plateau; weekends shift the morning peak later and raise daytime load. This is the
  shape of Elexon's domestic Profile Class 1 and of measured Irish/UK smart-meter data
  (McLoughlin, Duffy & Conlon 2012, Energy and Buildings 48; Richardson et al. 2010, Energy and
  Buildings 42(10), "Domestic electricity use: a high-resolution energy demand model").
* Electric heating in about 40% of homes, linear in heating degrees below 15 degC
  (degree-hour models, e.g. CIBSE TM41).
* Appliance spikes: Poisson events (kettle, oven, washing machine; 0.5-2 kWh in an hour) and, in
  about 10% of homes, overnight EV charging blocks (3.7-7 kW chargers, 23-05 h).
* Multiplicative measurement/behaviour noise (lognormal, sigma 0.1).
"""

from __future__ import annotations

import numpy as np

from chainml.meta.tasks.base import Split, Task, TaskFamily

N_FEATURES = 8


def _bump(h: np.ndarray, centre: float | np.ndarray, width: float) -> np.ndarray:
    """A Gaussian bump on the 24-hour circle."""
    d = (h - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


class MeterTask(Task):
    def __init__(
        self, family: TaskFamily, seed: int, index: int, split: Split, p: dict[str, float]
    ) -> None:
        super().__init__(family, seed, index, split)
        self.p = p

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        h = rng.integers(0, 24, size=n).astype(np.float64)
        d = rng.integers(0, 7, size=n).astype(np.float64)
        weekend = (d >= 5).astype(np.float64)
        temp = p["climate"] + 4.0 * np.cos(2 * np.pi * (h - 15.0) / 24.0) + rng.normal(0, 2.0, n)
        morning = p["am"] * _bump(h, p["tm"] + weekend * p["weekend_shift"], p["sm"])
        evening = p["ae"] * _bump(h, p["te"], p["se"])
        daytime = p["ad"] * (1.0 + weekend * p["weekend_boost"]) * ((h >= 9) & (h < 17))
        heating = p["heat"] * np.maximum(15.0 - temp, 0.0)
        ev = p["ev"] * ((h >= 23) | (h < 5)) * (rng.random(n) < 0.5)
        spikes = rng.poisson(p["spike_rate"], n) * rng.uniform(0.5, 2.0, n)
        load = (p["base"] + morning + evening + daytime + heating + ev) * rng.lognormal(
            0.0, 0.1, n
        ) + spikes
        x = np.stack(
            [
                np.sin(2 * np.pi * h / 24),
                np.cos(2 * np.pi * h / 24),
                np.sin(4 * np.pi * h / 24),
                np.cos(4 * np.pi * h / 24),
                np.sin(2 * np.pi * d / 7),
                np.cos(2 * np.pi * d / 7),
                weekend,
                temp / 10.0,
            ],
            axis=1,
        )
        return x, load[:, None]


class MeterFamily(TaskFamily):
    name = "meter"
    kind = "regression"
    default_arch = "mlp-meter"
    input_shape = (N_FEATURES,)

    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        p = {
            "base": rng.uniform(0.1, 0.4),
            "tm": rng.uniform(6.0, 9.0),
            "am": rng.uniform(0.2, 1.5),
            "sm": rng.uniform(0.7, 1.5),
            "te": rng.uniform(17.0, 21.0),
            "ae": rng.uniform(0.5, 2.5),
            "se": rng.uniform(1.0, 2.5),
            "ad": rng.uniform(0.0, 0.6),
            "weekend_shift": rng.uniform(0.5, 2.0),
            "weekend_boost": rng.uniform(0.0, 1.5),
            "climate": rng.uniform(-5.0, 20.0),
            "heat": rng.uniform(0.02, 0.12) if rng.random() < 0.4 else 0.0,
            "ev": rng.uniform(3.7, 7.0) if rng.random() < 0.1 else 0.0,
            "spike_rate": rng.uniform(0.02, 0.15),
        }
        return MeterTask(self, seed, index, split, p)
