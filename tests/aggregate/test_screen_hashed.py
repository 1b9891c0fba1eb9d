"""The collusion screen above ``EXACT_SCREEN_UP_TO`` rows (hash buckets, near O(n d)) finds the
same colluders as the all-pairs screen, and the same on every machine and in any row order."""

from __future__ import annotations

import numpy as np
import pytest

from chainml.aggregate import rules
from chainml.aggregate.rules import coordinate_median, coordinated_rows


def fleet(seed: int, n: int, groups: int, dim: int = 1761) -> np.ndarray:
    """Sparse honest rows plus ``groups`` groups of colluders, each sharing one direction at
    scales and jitters (1e-4 relative) that keep them above cosine 0.999 with each other."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[rng.random((n, dim)) > 0.1] = 0
    members = rng.choice(n, size=groups * 40, replace=False).reshape(groups, 40)
    for g in members:
        direction = rng.standard_normal(dim).astype(np.float32)
        for t, i in enumerate(g):
            jitter = 1e-4 * rng.standard_normal(dim).astype(np.float32)
            x[i] = direction * (1 + t) + jitter * np.linalg.norm(direction) * (1 + t)
    return x


def all_pairs(x: np.ndarray, centre: np.ndarray, cosine: float) -> list[int]:
    limit = rules.EXACT_SCREEN_UP_TO
    rules.EXACT_SCREEN_UP_TO = 10**9
    try:
        return coordinated_rows(x, centre, cosine)
    finally:
        rules.EXACT_SCREEN_UP_TO = limit


@pytest.mark.parametrize("seed", [0, 1])
def test_hashed_screen_finds_what_testing_every_pair_finds(seed: int) -> None:
    x = fleet(seed, 2_600, groups=3)
    x[5] = 0  # an empty update
    centre = coordinate_median(x)
    assert x.shape[0] > rules.EXACT_SCREEN_UP_TO  # the hashed path runs
    expected = all_pairs(x, centre, 0.999)
    assert len(expected) == 120  # the three groups, and nobody else: the test can fail
    assert coordinated_rows(x, centre, 0.999) == expected


def test_hashed_screen_does_not_depend_on_row_order() -> None:
    x = fleet(3, 2_600, groups=2)
    order = np.random.default_rng(9).permutation(x.shape[0])
    centre = coordinate_median(x)
    flagged = coordinated_rows(x, centre, 0.999)
    shuffled = coordinated_rows(x[order], centre, 0.999)
    assert sorted(order[shuffled].tolist()) == flagged


def test_honest_rows_alone_are_never_flagged_by_the_hashed_screen() -> None:
    x = fleet(4, 3_000, groups=0)
    assert coordinated_rows(x, coordinate_median(x), 0.999) == []
