"""Sparse int8 updates: selection, round trips, bounds and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainml.errors import MetaLearningError
from chainml.meta.models import model_spec
from chainml.meta.sparse import (
    SparseUpdate,
    dense_update_bytes,
    flatten_body,
    sparsify,
    top_k_count,
    top_k_indices,
    unflatten_body,
)

ARCH = "mlp-sine"


def _delta(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(model_spec(ARCH).body_size) * 0.01).astype(np.float32)


def test_top_k_breaks_ties_by_lower_index_and_sorts() -> None:
    d = np.array([0.5, -1.0, 1.0, 0.2, -1.0, 0.5], np.float32)
    assert top_k_indices(d, 2).tolist() == [1, 2]
    assert top_k_indices(d, 4).tolist() == [0, 1, 2, 4]
    assert top_k_indices(d, 4).dtype == np.int32


def test_selection_keeps_the_largest_magnitudes() -> None:
    d = _delta()
    u = sparsify(d, ARCH, 0.1)
    assert u.k == top_k_count(d.size, 0.1) == 172
    kept = np.abs(d[u.indices]).min()
    dropped = np.delete(np.abs(d), u.indices).max()
    assert kept >= dropped


@pytest.mark.parametrize("granularity", ["update", "param"])
@pytest.mark.parametrize("encoding", ["bitmask", "indices"])
def test_round_trip_through_arrays_and_json(granularity, encoding) -> None:
    u = sparsify(_delta(1), ARCH, 0.1, granularity)
    arrays, meta = u.to_arrays(encoding)
    meta = json.loads(json.dumps(meta))
    arrays = {k: np.frombuffer(v.tobytes(), v.dtype).reshape(v.shape) for k, v in arrays.items()}
    back = SparseUpdate.from_arrays(arrays, meta)
    assert np.array_equal(back.indices, u.indices) and np.array_equal(back.values, u.values)
    assert np.array_equal(back.scales, u.scales) and back.granularity == granularity
    assert np.array_equal(back.to_dense(), u.to_dense())


@pytest.mark.parametrize("granularity", ["update", "param"])
def test_dequantized_values_are_within_half_a_step(granularity) -> None:
    d = _delta(2)
    u = sparsify(d, ARCH, 0.1, granularity)
    dense = u.to_dense()
    step = u.scales[u.segments()]
    assert np.all(np.abs(dense[u.indices] - d[u.indices]) <= step / 2 * (1 + 1e-6))
    assert np.count_nonzero(np.delete(dense, u.indices)) == 0


def test_compact_encoding_is_over_ten_times_smaller_than_dense_float32() -> None:
    u = sparsify(_delta(), ARCH, 0.1)
    assert dense_update_bytes(ARCH) / u.nbytes("bitmask") >= 10
    assert u.nbytes("indices") == 4 * u.k + u.k + 4 * len(u.scales)


def test_flatten_round_trip() -> None:
    spec = model_spec(ARCH)
    d = _delta()
    parts = unflatten_body(d, spec)
    assert list(parts) == [p.name for p in spec.body]
    assert np.array_equal(flatten_body(parts, spec), d)


def test_selection_is_deterministic() -> None:
    a, b = sparsify(_delta(3), ARCH, 0.05), sparsify(_delta(3), ARCH, 0.05)
    assert a.to_arrays()[0]["mask"].tobytes() == b.to_arrays()[0]["mask"].tobytes()
    assert a.values.tobytes() == b.values.tobytes()


def test_malformed_payloads_are_rejected() -> None:
    u = sparsify(_delta(), ARCH, 0.1)
    arrays, meta = u.to_arrays("indices")
    bad = [
        ({**arrays, "indices": arrays["indices"][::-1].copy()}, meta),
        ({**arrays, "indices": arrays["indices"].astype(np.int64)}, meta),
        ({**arrays, "values": arrays["values"][:-1]}, meta),
        ({**arrays, "scales": np.array([np.nan, 1, 1, 1], np.float32)}, meta),
        (arrays, {**meta, "format": "other"}),
        (arrays, {**meta, "size": 10}),
        ({k: v for k, v in arrays.items() if k != "values"}, meta),
    ]
    for a, m in bad:
        with pytest.raises(MetaLearningError):
            SparseUpdate.from_arrays(a, m)
    arrays, meta = u.to_arrays("bitmask")
    mask = arrays["mask"].copy()
    mask[0] ^= 1  # one index more or fewer than there are values
    with pytest.raises(MetaLearningError):
        SparseUpdate.from_arrays({**arrays, "mask": mask}, meta)


def test_non_finite_deltas_are_rejected() -> None:
    d = _delta()
    d[5] = np.inf
    with pytest.raises(MetaLearningError, match="diverged"):
        sparsify(d, ARCH, 0.1)
