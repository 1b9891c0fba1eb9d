"""The vectorized collusion screen gives exactly the old all-pairs answer (same flagged rows)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from chainml.aggregate import rules
from chainml.aggregate.rules import coordinate_median, coordinated_rows, to_fixed_point


def all_pairs_reference(
    rows: np.ndarray, centre: np.ndarray, min_cosine: float, min_partners: int = 1
) -> list[int]:
    """The screen as it was: both exact Gram matrices as Python ints, every pair in Python."""
    n = rows.shape[0]
    if n < 3:
        return []

    def gram(x: np.ndarray) -> list[list[int]]:
        fixed = to_fixed_point(x)
        return [[int(v) for v in row] for row in (fixed @ fixed.T).astype(np.int64)]

    diffs = (rows.astype(np.float64) - centre.astype(np.float64)[None, :]).astype(np.float32)
    grams = (gram(rows.astype(np.float32)), gram(diffs))
    m2 = round(min_cosine * min_cosine * 1_000_000)

    def parallel(g: list[list[int]], i: int, j: int) -> bool:
        return g[i][j] > 0 and g[i][j] ** 2 * 1_000_000 >= m2 * g[i][i] * g[j][j]

    partners = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if all(parallel(g, i, j) for g in grams):
                partners[i] += 1
                partners[j] += 1
    return [i for i in range(n) if partners[i] >= min_partners]


def sparse_updates(rng: np.random.Generator, n: int, dim: int = 1761) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[rng.random((n, dim)) > 0.1] = 0  # top-10% updates, like the devices send
    return x


def with_colluders(rng: np.random.Generator, x: np.ndarray, k: int, noise: float) -> np.ndarray:
    x = x.copy()
    direction = rng.standard_normal(x.shape[1]).astype(np.float32)
    for t in range(k):
        jitter = noise * (t % 3) * rng.standard_normal(x.shape[1]).astype(np.float32)
        x[t] = direction * (1 + t) + jitter
    return x


def near_threshold_pairs(cosine: float, count: int, dim: int = 64) -> np.ndarray:
    """Pairs of rows whose cosine sits within about 1e-9 of ``cosine`` on either side."""
    rows = []
    for t in range(count):
        c = cosine + (t - count // 2) * 2e-10
        a = np.zeros(dim, np.float32)
        b = np.zeros(dim, np.float32)
        a[2 * t % dim] = 1.0
        b[2 * t % dim] = c
        b[(2 * t + 1) % dim] = np.sqrt(max(0.0, 1 - c * c))
        rows += [a * (t + 1), b * (2 * t + 1)]
    return np.array(rows, np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_screen_equals_all_pairs_on_fleets_with_colluders(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = [5, 40, 120, 300, 600, 900][seed]
    x = with_colluders(rng, sparse_updates(rng, n), k=max(2, n // 10), noise=1e-3)
    x[-1] = 0  # an empty update
    if n > 10:
        x[-2] = -x[0]  # one pointing against a colluder
    centre = coordinate_median(x)
    for cosine, partners in ((0.999, 1), (0.99, 2), (0.5, 1)):
        expected = all_pairs_reference(x, centre, cosine, partners)
        assert coordinated_rows(x, centre, cosine, partners) == expected
    if n >= 40:
        assert coordinated_rows(x, centre, 0.999)  # colluders are found: the test can fail


def test_screen_decides_pairs_at_the_threshold_exactly() -> None:
    x = near_threshold_pairs(0.999, 40)
    centre = np.zeros(x.shape[1], np.float32)  # deviations = the rows themselves
    expected = all_pairs_reference(x, centre, 0.999)
    assert 0 < len(expected) < x.shape[0]  # some pairs just above, some just below
    assert coordinated_rows(x, centre, 0.999) == expected


def test_screen_rejects_what_the_reference_rejects() -> None:
    bad = np.ones((4, 8), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(Exception) as ours:
        coordinated_rows(bad, np.zeros(8, np.float32), 0.999)
    with pytest.raises(type(ours.value), match=str(ours.value)):
        all_pairs_reference(bad, np.zeros(8, np.float32), 0.999)
    assert coordinated_rows(np.ones((2, 8), np.float32), np.zeros(8, np.float32), 0.9) == []


def test_screen_at_ten_thousand_nodes_is_fast() -> None:
    rng = np.random.default_rng(7)
    x = with_colluders(rng, sparse_updates(rng, 10_000), k=200, noise=1e-3)
    centre = coordinate_median(x)
    start = time.perf_counter()
    flagged = coordinated_rows(x, centre, 0.999)
    elapsed = time.perf_counter() - start
    assert set(flagged) >= set(range(1, 200))  # the colluders (row 0's twin noise is 0)
    assert elapsed < 60, elapsed  # the all-pairs screen needed several GB and many minutes
    assert rules.COSINE_MARGIN > 1761 * 2.0**-24  # the float32 error bound it relies on
