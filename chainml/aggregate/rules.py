"""The aggregation maths: functions of a stacked ``(n_nodes, dim)`` float32 array.

Rows are in canonical order (the caller sorts contributions by node address), so every rule is a
deterministic function of the chain's data. Nothing here modifies its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from chainml.errors import ConfigError

EXACT_FLOAT_BITS = 52
"""float64 represents every integer below 2^53 exactly (we keep one bit of headroom)."""


def ordered_sum(rows: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Sum of rows in float64, one elementwise add per row, in row order (bit-reproducible)."""
    acc = np.zeros(rows.shape[1], dtype=np.float64)
    for i in range(rows.shape[0]):
        row = rows[i].astype(np.float64)
        acc = acc + (row if weights is None else row * float(weights[i]))
    return acc


def weighted_mean(rows: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Mean (or weighted mean) of the rows, as float32."""
    _require_rows(rows, 1)
    if weights is None:
        total = float(rows.shape[0])
    else:
        if len(weights) != rows.shape[0] or any(w < 0 for w in weights):
            raise ConfigError("need one non-negative weight per contribution")
        total = math.fsum(float(w) for w in weights)
        if total <= 0:
            raise ConfigError("the weights of the contributions sum to zero")
    return (ordered_sum(rows, weights) / total).astype(np.float32)


def coordinate_median(rows: np.ndarray) -> np.ndarray:
    """Coordinate-wise median; for an even count, the midpoint of the two middle values.

    Selection (``np.partition``) rather than a full sort: the middle values are the same
    whatever the algorithm, so the result is too (zeros come out as +0.0).
    """
    _require_rows(rows, 1)
    n = rows.shape[0]
    columns = np.ascontiguousarray(rows.T)
    if n % 2:
        middle = np.partition(columns, n // 2, axis=1)[:, n // 2].astype(np.float64)
    else:
        picked = np.partition(columns, [n // 2 - 1, n // 2], axis=1)
        middle = (picked[:, n // 2 - 1].astype(np.float64) + picked[:, n // 2]) * 0.5
    return (middle + 0.0).astype(np.float32)


def trimmed_mean(rows: np.ndarray, trim_fraction: float) -> np.ndarray:
    """Coordinate-wise mean after dropping the ``trim_fraction`` largest and smallest values."""
    _require_rows(rows, 1)
    if not 0 <= trim_fraction < 0.5:
        raise ConfigError(f"trim fraction must be in [0, 0.5), got {trim_fraction}")
    n = rows.shape[0]
    k = min(math.floor(trim_fraction * n), (n - 1) // 2)
    ordered = np.sort(rows, axis=0, kind="stable")
    kept = ordered[k : n - k]
    return (ordered_sum(kept) / float(kept.shape[0])).astype(np.float32)


def fixed_point_shift(rows: np.ndarray) -> int:
    """The power of two that puts ``rows`` on the grid of :func:`to_fixed_point`."""
    dim = max(rows.shape[1], 1)
    bits = (EXACT_FLOAT_BITS - math.ceil(math.log2(dim)) - 1) // 2
    if bits < 8:
        raise ConfigError(f"too many coordinates ({dim}) for exact distances")
    peak = float(np.max(np.abs(rows))) if rows.size else 0.0
    if not math.isfinite(peak):
        raise ConfigError("cannot compute distances of contributions with NaN or infinity")
    return 0 if peak == 0 else math.floor(math.log2(2.0**bits / peak))


def to_fixed_point(rows: np.ndarray) -> np.ndarray:
    """Integer-valued float64 copy on a power-of-two grid chosen from the data.

    Coordinates are scaled so that ``|x| <= 2^b`` with ``2b + log2(dim) <= 52``: then every dot
    product of two rows is a sum of integers that stays below 2^52, which float64 represents
    exactly. Any summation order (BLAS, SIMD, threads) then gives the same exact result, so
    distances built from these dot products are identical on every machine.
    """
    return np.rint(np.ldexp(rows.astype(np.float64), fixed_point_shift(rows)))


def squared_distances(rows: np.ndarray, to: np.ndarray | None = None) -> np.ndarray:
    """Exact pairwise squared L2 distances in fixed point: ``(n, n)``, or ``(n,)`` to one point.

    ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` with every term an exact integer (see
    :func:`to_fixed_point`), combined in int64.
    """
    if to is None:
        return _fixed_squared_distances(to_fixed_point(rows))
    return _fixed_squared_distances(to_fixed_point(np.vstack([rows, to[None, :]])))[:-1, -1]


def _fixed_squared_distances(fixed: np.ndarray) -> np.ndarray:
    """Pairwise squared distances of rows already on the fixed-point grid (exact, int64)."""
    gram = (fixed @ fixed.T).astype(np.int64)
    norms = np.diagonal(gram).copy()
    return norms[:, None] + norms[None, :] - 2 * gram


MIX_BLOCK = 1024
"""Nearest-neighbour mixing compares every pair within blocks of at most this many rows (in
canonical order), so its cost grows linearly with the fleet beyond one block."""


def nearest_neighbour_mix(rows: np.ndarray, byzantine_fraction: float) -> np.ndarray:
    """Nearest-neighbour mixing (Allouah et al., "Fixing by Mixing", AISTATS 2023).

    Each row becomes the mean of its ``n - f`` nearest rows (itself included; ties to the lower
    index), ``f = floor(byzantine_fraction * n)``. Honest nodes with different tasks disagree a
    lot; mixing averages that spread away before a robust rule runs, while a far-off update
    mostly mixes only with itself. Exact: distances and sums are integers on the fixed-point
    grid of :func:`to_fixed_point`, so any BLAS gives the same bits. Above :data:`MIX_BLOCK`
    rows the rows are mixed within near-equal contiguous blocks.
    """
    _require_rows(rows, 1)
    if not 0 <= byzantine_fraction < 0.5:
        raise ConfigError(f"mixing fraction must be in [0, 0.5), got {byzantine_fraction}")
    n = rows.shape[0]
    out = np.empty(rows.shape, dtype=np.float32)
    for block in np.array_split(np.arange(n), math.ceil(n / MIX_BLOCK)):
        out[block] = _mix_block(rows[block], byzantine_fraction)
    return out


def _mix_block(rows: np.ndarray, byzantine_fraction: float) -> np.ndarray:
    n = rows.shape[0]
    keep = max(n - math.floor(byzantine_fraction * n), 1)
    shift = fixed_point_shift(rows)
    fixed = np.rint(np.ldexp(rows.astype(np.float64), shift))
    nearest = np.argsort(_fixed_squared_distances(fixed), axis=1, kind="stable")[:, :keep]
    pick = np.zeros((n, n), dtype=np.float64)
    pick[np.arange(n)[:, None], nearest] = 1.0
    sums = pick @ fixed  # integers below 2^53: exact in any summation order
    return np.ldexp(sums / float(keep), -shift).astype(np.float32)


def krum_select(rows: np.ndarray, byzantine: int, keep: int) -> list[int]:
    """Multi-Krum: the ``keep`` rows with the smallest Krum scores (Blanchard et al., 2017).

    A row's score is the sum of its squared distances to its ``n - byzantine - 2`` nearest
    neighbours; ties go to the lower row index.
    """
    n = rows.shape[0]
    _require_rows(rows, 1)
    if not 1 <= keep <= n:
        raise ConfigError(f"Krum must keep between 1 and {n} contributions, got {keep}")
    neighbours = max(n - byzantine - 2, 1)
    dist = squared_distances(rows)
    scores = []
    for i in range(n):
        others = np.sort(np.delete(dist[i], i))
        scores.append((int(others[:neighbours].sum()) if n > 1 else 0, i))
    return sorted(i for _, i in sorted(scores)[:keep])


def norm_outliers(rows: np.ndarray, factor: float) -> list[int]:
    """Rows whose L2 norm exceeds ``factor`` times the median norm (boosted or noisy updates).

    Honest updates of heterogeneous tasks differ in norm by up to ~10x, so the factor must be
    generous; the comparison is done on exact squared norms.
    """
    if rows.shape[0] < 3:
        return []
    fixed = to_fixed_point(rows)
    norms = [int(v) for v in np.einsum("ij,ij->i", fixed, fixed)]  # exact: see to_fixed_point
    median = sorted(norms)[(len(norms) - 1) // 2]
    limit = factor * factor
    return [i for i, n in enumerate(norms) if n > limit * median and n > 0]


def clip_norms(rows: np.ndarray, factor: float) -> np.ndarray:
    """Rows scaled down to at most ``factor`` times the median norm (bounded influence).

    Norms come from exact squared norms (see :func:`to_fixed_point`) and the scaling is one
    elementwise multiply per row, so the result is reproducible bit for bit.
    """
    if rows.shape[0] < 3:
        return rows.copy()
    fixed = to_fixed_point(rows)
    norms = np.sqrt(np.array([float(int(v)) for v in np.einsum("ij,ij->i", fixed, fixed)]))
    limit = factor * float(np.sort(norms)[(len(norms) - 1) // 2])
    out = rows.astype(np.float32, copy=True)
    for i, norm in enumerate(norms.tolist()):
        if norm > limit > 0:
            out[i] = (rows[i].astype(np.float64) * (limit / norm)).astype(np.float32)
    return out


def direction_outliers(rows: np.ndarray, centre: np.ndarray, min_cosine: float) -> list[int]:
    """Rows pointing against the robust centre: cosine below ``-min_cosine`` (exact test).

    A sign-flipped or label-flipped update points away from where honest nodes go; honest
    updates rarely do by more than a small angle past orthogonal.
    """
    if rows.shape[0] < 3 or not np.any(centre):
        return []
    fixed = to_fixed_point(np.vstack([rows, centre[None, :]]))
    c = fixed[-1]
    c_sq = int(np.dot(c, c))
    out = []
    for i in range(rows.shape[0]):
        u = fixed[i]
        dot, u_sq = int(np.dot(u, c)), int(np.dot(u, u))
        # cos < -m  <=>  dot < 0 and dot^2 > m^2 |u|^2 |c|^2  (integers, no rounding)
        if dot < 0 and dot * dot * 10_000 > round(min_cosine * min_cosine * 10_000) * u_sq * c_sq:
            out.append(i)
    return out


def exact_norms(rows: np.ndarray) -> np.ndarray:
    """L2 norms of the rows on the fixed-point grid of :func:`to_fixed_point` (one common scale
    for all rows, so only their ratios mean anything), identical on every machine."""
    fixed = to_fixed_point(rows)
    return np.sqrt(np.array([float(int(v)) for v in np.einsum("ij,ij->i", fixed, fixed)]))


def centered_clip(
    rows: np.ndarray, centre: np.ndarray, radius_factor: float, iterations: int
) -> np.ndarray:
    """Centered clipping (Karimireddy, He & Jaggi, ICML 2021), excluding nobody.

    From a robust start ``v``, repeat: ``v += mean_i clip(x_i - v, tau)`` with ``tau`` =
    ``radius_factor`` times the median distance to ``v``. An update far from the crowd moves the
    result by at most ``tau / n``, however large it is; honest updates all count.
    """
    _require_rows(rows, 1)
    if radius_factor <= 0 or iterations < 1:
        raise ConfigError("centered clipping needs a positive radius factor and >= 1 iteration")
    v = centre.astype(np.float64)
    n = rows.shape[0]
    for _ in range(iterations):
        diffs = rows.astype(np.float64) - v[None, :]
        dist = exact_norms(diffs)
        tau = radius_factor * float(np.sort(dist)[(n - 1) // 2])
        scales = [1.0 if d <= tau or d == 0 else tau / d for d in dist.tolist()]
        v = v + ordered_sum(diffs, scales) / float(n)
    return v.astype(np.float32)


COSINE_MARGIN = 1e-3
"""How far below the threshold a float32 cosine may fall and still be checked exactly: float32
dot products of unit vectors of dimension d err by at most about d * 2^-24 (1e-4 at d = 1761)."""
_GRAM_BLOCK = 512
_PAIR_CHUNK = 4096
EXACT_SCREEN_UP_TO = 2048
"""Up to this many rows the collusion screen tests every pair; above, pairs that share a bucket
of a locality-sensitive hash (:func:`_hashed_pairs`)."""
HASH_TABLES, HASH_BITS = 8, 16
"""Two rows at the threshold cosine 0.999 (2.6 degrees apart) share a 16-bit bucket with
probability 0.986^16 = 0.80, so they are never bucketed together in all 8 tables with
probability 0.2^8 = 3e-6; colluders far above the threshold almost never escape. Honest rows
(cosine ~0.2) share a bucket with probability ~1e-4 per table."""


def _parallel(g: np.ndarray, gi: np.ndarray, gj: np.ndarray, m2: int) -> np.ndarray:
    """``g > 0 and 10^6 g^2 >= m2 gi gj`` for exact integer-valued float64 arrays, decided
    exactly: float64 settles every case outside a 1e-9 relative band, Python ints the rest."""
    lhs = g * g * 1e6
    rhs = float(m2) * gi * gj
    positive = g > 0
    sure = positive & (lhs >= rhs * (1 + 1e-9))
    out = sure.copy()
    for k in np.flatnonzero(positive & ~sure & (lhs >= rhs * (1 - 1e-9))).tolist():
        gk = int(g[k])
        out[k] = gk * gk * 1_000_000 >= m2 * int(gi[k]) * int(gj[k])
    return out


def _unit_rows(fixed: np.ndarray, sq: np.ndarray) -> np.ndarray:
    norms = np.sqrt(sq)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (fixed * scale[:, None]).astype(np.float32)


def _gram_pairs(unit: np.ndarray, floor: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair ``i < j`` whose float32 cosine reaches ``floor`` (blocks of a Gram matrix)."""
    n = unit.shape[0]
    for start in range(0, n, _GRAM_BLOCK):
        stop = min(n, start + _GRAM_BLOCK)
        cosines = unit[start:stop] @ unit[start:].T
        r, c = np.nonzero(np.triu(cosines >= floor, k=1))
        yield r + start, c + start


def _hashed_pairs(
    fixed: np.ndarray, unit: np.ndarray, floor: float, open_rows: Callable[[np.ndarray], np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs of rows that share a bucket in one of :data:`HASH_TABLES` sign-of-projection hashes
    (SimHash), each on :data:`HASH_BITS` seeded +-1 hyperplanes.

    The projections are dot products of exact fixed-point rows with integer hyperplanes, sums
    of integers below 2^52 (see :func:`to_fixed_point`), so every machine computes the same
    bits and the same buckets. In a bucket, neighbours (by row index) are paired first; a row
    still short of partners (``open_rows``) is then paired with the whole bucket. Cost:
    O(n d tables bits) for the hashes plus the bucket pairs (O(n) for spread honest rows and
    O(m) for a group of m parallel colluders).
    """
    d = fixed.shape[1]
    rng = np.random.default_rng(0)
    planes = rng.choice(np.array([-1.0, 1.0]), size=(d, HASH_TABLES * HASH_BITS))
    bits = (fixed @ planes) > 0  # exact: integer sums below 2^52
    weights = (1 << np.arange(HASH_BITS, dtype=np.int64))[None, :]
    for t in range(HASH_TABLES):
        keys = (bits[:, t * HASH_BITS : (t + 1) * HASH_BITS] * weights).sum(axis=1)
        order = np.argsort(keys, kind="stable")
        edges = np.flatnonzero(np.diff(keys[order])) + 1
        buckets = [b for b in np.split(order, edges) if b.size > 1]
        for bucket in buckets:
            yield bucket[:-1], bucket[1:]
        for bucket in buckets:
            short = bucket[open_rows(bucket)]
            if short.size == 0 or bucket.size == 2:
                continue
            sub = unit[bucket]
            cosines = unit[short] @ sub.T
            r, c = np.nonzero(cosines >= floor)
            i, j = short[r], bucket[c]
            yield i[i != j], j[i != j]


def coordinated_rows(
    rows: np.ndarray, centre: np.ndarray, min_cosine: float, min_partners: int = 1
) -> list[int]:
    """Rows that point the same way as at least ``min_partners`` other rows, both as updates
    and as deviations from ``centre`` (cosine >= ``min_cosine`` for both; exact integer tests).

    Honest nodes hold different tasks and draw different samples, so no two of their updates
    are near-parallel. Colluders that share one malicious direction (ALIE, IPM, min-max and
    min-sum, Fang's Krum attack, sybils, model replacement) are, whatever their scale. The
    deviation test keeps two honest updates that merely share the fleet's common direction from
    matching; the raw test keeps two small honest updates (whose deviations are both about
    ``-centre``) from matching.

    Which pairs are looked at: up to :data:`EXACT_SCREEN_UP_TO` rows, every pair whose float32
    cosine could reach the threshold (``COSINE_MARGIN`` below it), so the answer is exactly that
    of testing every pair; above, the pairs sharing a hash bucket (:func:`_hashed_pairs`), which
    keeps the cost near O(n d) at 10,000 nodes. Either way each pair looked at gets the exact
    tests on fixed-point dot products (:func:`to_fixed_point`), and the answer is the same on
    every machine.
    """
    n = rows.shape[0]
    if n < 3:
        return []
    diffs = (rows.astype(np.float64) - centre.astype(np.float64)[None, :]).astype(np.float32)
    raw = to_fixed_point(rows.astype(np.float32))
    dev = to_fixed_point(diffs)
    raw_sq = np.einsum("ij,ij->i", raw, raw)  # exact integers: see to_fixed_point
    dev_sq = np.einsum("ij,ij->i", dev, dev)
    m2 = round(min_cosine * min_cosine * 1_000_000)
    floor = math.sqrt(m2 / 1_000_000) - COSINE_MARGIN
    unit = _unit_rows(raw, raw_sq)
    partners = np.zeros(n, dtype=np.int64)
    confirmed: set[tuple[int, int]] = set()

    def open_rows(idx: np.ndarray) -> np.ndarray:
        return partners[idx] < min_partners

    candidates = (
        _gram_pairs(unit, floor)
        if n <= EXACT_SCREEN_UP_TO
        else _hashed_pairs(raw, unit, floor, open_rows)
    )
    for ci, cj in candidates:
        for lo in range(0, ci.size, _PAIR_CHUNK):
            i, j = ci[lo : lo + _PAIR_CHUNK], cj[lo : lo + _PAIR_CHUNK]
            keep = open_rows(i) | open_rows(j)
            i, j = i[keep], j[keep]
            near = np.einsum("ij,ij->i", unit[i], unit[j]) >= floor
            i, j = i[near], j[near]
            keep = _parallel(np.einsum("ij,ij->i", raw[i], raw[j]), raw_sq[i], raw_sq[j], m2)
            i, j = i[keep], j[keep]
            keep = _parallel(np.einsum("ij,ij->i", dev[i], dev[j]), dev_sq[i], dev_sq[j], m2)
            for a, b in zip(i[keep].tolist(), j[keep].tolist(), strict=True):
                pair = (min(a, b), max(a, b))
                if pair not in confirmed:
                    confirmed.add(pair)
                    partners[a] += 1
                    partners[b] += 1
    return [i for i in range(n) if partners[i] >= min_partners]


def _require_rows(rows: np.ndarray, minimum: int) -> None:
    if rows.ndim != 2 or rows.shape[0] < minimum:
        raise ConfigError(f"need at least {minimum} contribution(s) to aggregate, got {rows.shape}")
