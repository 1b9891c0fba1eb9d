"""Sparse int8 updates: selection, the wire form, bounds and validation."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainml.errors import MetaLearningError
from chainml.meta.models import model_spec
from chainml.meta.sparse import (
    MAX_SCALE,
    SparseUpdate,
    decode_sparse,
    dense_update_bytes,
    encode_sparse,
    flatten_params,
    sparsify,
    top_k_count,
    top_k_indices,
    unflatten_params,
)

ARCH = "mlp-sine"


def _delta(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(model_spec(ARCH).num_params) * 0.01).astype(np.float32)


def test_top_k_breaks_ties_by_lower_index_and_sorts() -> None:
    d = np.array([0.5, -1.0, 1.0, 0.2, -1.0, 0.5], np.float32)
    assert top_k_indices(d, 2).tolist() == [1, 2]
    assert top_k_indices(d, 4).tolist() == [0, 1, 2, 4]
    assert top_k_indices(d, 4).dtype == np.int32


def test_selection_keeps_the_largest_magnitudes() -> None:
    d = _delta()
    u = sparsify(d, ARCH, 0.1)
    assert u.k == top_k_count(d.size, 0.1) == 177
    kept = np.abs(d[u.indices]).min()
    dropped = np.delete(np.abs(d), u.indices).max()
    assert kept >= dropped


@pytest.mark.parametrize("granularity", ["update", "param"])
def test_round_trip_through_the_wire_form(granularity) -> None:
    u = sparsify(_delta(1), ARCH, 0.1, granularity)
    back = decode_sparse(encode_sparse(u), ARCH)
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


def test_wire_form_is_over_ten_times_smaller_than_dense_float32() -> None:
    u = sparsify(_delta(), ARCH, 0.1)
    spec = model_spec(ARCH)
    mask, scales = (spec.num_params + 7) // 8, 4 * len(spec.params)
    assert u.nbytes() == len(encode_sparse(u)) == 4 + 2 + len(ARCH) + 11 + scales + mask + u.k
    assert dense_update_bytes(ARCH) / u.nbytes() >= 10


def test_flatten_round_trip() -> None:
    spec = model_spec(ARCH)
    d = _delta()
    parts = unflatten_params(d, spec)
    assert list(parts) == [p.name for p in spec.params]
    assert np.array_equal(flatten_params(parts, spec), d)


def test_selection_is_deterministic() -> None:
    a, b = sparsify(_delta(3), ARCH, 0.05), sparsify(_delta(3), ARCH, 0.05)
    assert encode_sparse(a) == encode_sparse(b)


def _header_offset() -> int:
    return 4 + 2 + len(ARCH)


def test_every_adversary_controlled_field_is_checked() -> None:
    """Each field a hostile node can set, set wrong, is refused with a reason (no crash)."""
    u = sparsify(_delta(), ARCH, 0.1)
    good = encode_sparse(u)
    h = _header_offset()
    gran, size, k, n_scales = struct.unpack("<BIIH", good[h : h + 11])
    scales_at = h + 11
    mask_at = scales_at + 4 * n_scales

    def header(**over: int) -> bytes:
        v = {"gran": gran, "size": size, "k": k, "n": n_scales} | over
        packed = struct.pack("<BIIH", v["gran"], v["size"], v["k"], v["n"])
        return good[:h] + packed + good[h + 11 :]

    def scale(value: float) -> bytes:
        return good[:scales_at] + struct.pack("<f", value) + good[scales_at + 4 :]

    flipped_mask = bytearray(good)
    flipped_mask[mask_at] ^= 0x01
    minus_128 = bytearray(good)
    minus_128[-1] = 0x80
    bad = {
        "magic": b"XXXX" + good[4:],
        "version": good[:4] + b"\x09" + good[5:],
        "architecture": good[:6] + b"mlp-XXXX" + good[6 + len(ARCH) :],
        "granularity": header(gran=7),
        "size": header(size=size + 1),
        "count": header(k=size + 5),
        "scale count": header(n=n_scales + 1),
        "nan scale": scale(float("nan")),
        "huge scale": scale(3e38),
        "negative scale": scale(-1.0),
        "mask vs count": bytes(flipped_mask),
        "-128": bytes(minus_128),
        "truncated": good[:-3],
        "trailing": good + b"\x00",
        "empty": b"",
    }
    for name, data in bad.items():
        with pytest.raises(MetaLearningError):
            decode_sparse(data, ARCH)
            pytest.fail(f"{name}: accepted")
    assert np.array_equal(decode_sparse(good, ARCH).to_dense(), u.to_dense())
    assert MAX_SCALE < 3e38


def test_decoder_refuses_an_update_for_another_architecture() -> None:
    u = sparsify(_delta(), ARCH, 0.1)
    with pytest.raises(MetaLearningError, match="expected"):
        decode_sparse(encode_sparse(u), "mlp-meter")


def test_direct_construction_checks_the_fields_too() -> None:
    u = sparsify(_delta(), ARCH, 0.1)
    with pytest.raises(MetaLearningError):
        SparseUpdate(ARCH, u.size, u.indices[::-1].copy(), u.values, u.scales)
    with pytest.raises(MetaLearningError):
        SparseUpdate(ARCH, u.size, u.indices.astype(np.int64), u.values, u.scales)


def test_non_finite_deltas_are_rejected() -> None:
    d = _delta()
    d[5] = np.inf
    with pytest.raises(MetaLearningError, match="diverged"):
        sparsify(d, ARCH, 0.1)


_GOOD = encode_sparse(sparsify(_delta(7), ARCH, 0.1))


def _decodes_or_refuses(data: bytes) -> None:
    """The only outcomes for hostile bytes: a valid update, or MetaLearningError."""
    try:
        u = decode_sparse(data, ARCH)
    except MetaLearningError:
        return
    assert np.all(np.isfinite(u.to_dense()))
    assert encode_sparse(u) == data  # what was accepted is exactly what re-encodes


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    _decodes_or_refuses(data)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    st.integers(-8, 8),
)
def test_fuzz_mutated_updates_never_crash_the_decoder(
    edits: list[tuple[int, int]], resize: int
) -> None:
    data = bytearray(_GOOD)
    for at, value in edits:
        data[at] = value
    data = data + bytes(resize) if resize >= 0 else data[:resize]
    _decodes_or_refuses(bytes(data))


def test_a_diverging_direction_is_bounded_to_what_the_wire_carries() -> None:
    """A device whose model diverged still sends a valid update in the same direction, instead
    of failing the round (the cap that decoders enforce would reject it otherwise)."""
    from chainml.meta.models import model_spec
    from chainml.meta.sparse import MAX_SCALE, sparsify

    n = model_spec("mlp-sine").num_params
    delta = np.zeros(n, np.float32)
    delta[[3, 500, 1200]] = [3e9, -1e8, 5e7]
    u = sparsify(delta, "mlp-sine", 0.1)
    dense = u.to_dense()
    assert np.all(u.scales <= MAX_SCALE) and dense[3] > 0 > dense[500]
    assert np.argmax(np.abs(dense)) == 3
