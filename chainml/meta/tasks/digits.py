"""Few-shot classification on scikit-learn's bundled handwritten digits (N-way K-shot).

``sklearn.datasets.load_digits`` ships inside the scikit-learn wheel (1,797 8x8 images, UCI
"Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998), so nothing is downloaded.
Pixels are scaled to [0, 1]. A fixed stratified split (independent of the family seed) puts 60%
of each digit's images in the training pool and 40% in the evaluation pool, so evaluation tasks
never show an image seen in meta-training. A task picks ``n_way`` of the 10 digits and a random
label permutation (as in Omniglot/miniImageNet episodes, Vinyals et al. 2016), so labels carry no
meaning across tasks and only adaptation can solve them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from chainml.errors import MetaLearningError
from chainml.meta.tasks.base import Episode, Split, Task, TaskFamily

TRAIN_FRACTION = 0.6
SPLIT_SEED = 20240601


@lru_cache(maxsize=1)
def _pools() -> dict[str, list[np.ndarray]]:
    """Per-split, per-digit arrays of images (fixed split, cached per process)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    rng = np.random.default_rng(SPLIT_SEED)
    pools: dict[str, list[np.ndarray]] = {"train": [], "eval": []}
    for digit in range(10):
        idx = np.flatnonzero(data.target == digit)
        idx = idx[rng.permutation(len(idx))]
        cut = round(TRAIN_FRACTION * len(idx))
        pools["train"].append(x[np.sort(idx[:cut])])
        pools["eval"].append(x[np.sort(idx[cut:])])
    return pools


class DigitsTask(Task):
    def __init__(
        self, family: TaskFamily, seed: int, index: int, split: Split, digits: np.ndarray
    ) -> None:
        super().__init__(family, seed, index, split)
        self.digits = digits  # digits[label] = the digit shown for that label

    def sample_class(self, rng: np.random.Generator, label: int, n: int) -> np.ndarray:
        pool = _pools()[self.split][int(self.digits[label])]
        if n > len(pool):
            raise MetaLearningError(f"digit pool has {len(pool)} images, asked for {n}")
        return pool[rng.choice(len(pool), size=n, replace=False)]

    def episode(self, shots: int, queries: int, draw: int = 0) -> Episode:
        """As :meth:`Task.episode`, but support and query images are disjoint."""
        rng = self.stream(draw)
        xs, ys, xq, yq = [], [], [], []
        for label, digit in enumerate(self.digits):
            pool = _pools()[self.split][int(digit)]
            if shots + queries > len(pool):
                raise MetaLearningError(
                    f"digit {digit} has {len(pool)} images, need {shots + queries}"
                )
            pick = pool[rng.choice(len(pool), size=shots + queries, replace=False)]
            xs.append(pick[:shots])
            xq.append(pick[shots:])
            ys += [label] * shots
            yq += [label] * queries
        out = []
        for x, y in ((xs, ys), (xq, yq)):
            order = rng.permutation(len(y))
            out += [
                torch.from_numpy(np.concatenate(x)[order]),
                torch.tensor(y, dtype=torch.int64)[torch.from_numpy(order)],
            ]
        return Episode(*out)


class DigitsFamily(TaskFamily):
    name = "digits"
    kind = "classification"
    default_arch = "mlp-digits"
    input_shape = (64,)

    def __init__(self, n_way: int = 5) -> None:
        if not 2 <= n_way <= 10:
            raise MetaLearningError(f"n_way must be in 2..10, got {n_way}")
        self.n_way = n_way

    def _make_task(self, rng: np.random.Generator, seed: int, index: int, split: Split) -> Task:
        return DigitsTask(self, seed, index, split, rng.permutation(10)[: self.n_way])
