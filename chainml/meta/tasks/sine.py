"""Sine-wave regression, exactly as in MAML (Finn, Abbeel & Levine, ICML 2017, Sec. 5.1).

Each task is ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5.0]``, phase ``phi ~ U[0, pi]``
and inputs ``x ~ U[-5, 5]`` (the same convention as the authors' code, ``cbfinn/maml``). It is the
reference benchmark whose published numbers ``bench/meta.py`` reproduces.
"""

from __future__ import annotations

import numpy as np

from chainml.meta.tasks.base import Split, Task, TaskFamily


class SineTask(Task):
    def __init__(
        self, family: TaskFamily, seed: int, index: int, split: Split, amp: float, phase: float
    ) -> None:
        super().__init__(family, seed, index, split)
        self.amplitude = amp
        self.phase = phase

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-5.0, 5.0, size=(n, 1))
        return x, self.amplitude * np.sin(x - self.phase)


class SineFamily(TaskFamily):
    name = "sine"
    kind = "regression"
    default_arch = "mlp-sine"
    input_shape = (1,)

    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        amp = rng.uniform(0.1, 5.0)
        phase = rng.uniform(0.0, np.pi)
        return SineTask(self, seed, index, split, amp, phase)
