"""The tensor codec: safetensors only, deterministic bytes, strict validation on read."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save as raw_safetensors

from chainml.errors import IntegrityError
from chainml.storage.limits import ObjectTooLargeError
from chainml.storage.tensors import (
    KEY_ARCH,
    check_spec,
    decode_tensors,
    encode_tensors,
    make_metadata,
    read_metadata,
    sparse_names,
)
from chainml.storage.unixfs import file_cid


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "layer1.weight": rng.standard_normal((40, 1)).astype(np.float32),
        "layer1.bias": np.zeros(40, np.float32),
        "layer2.weight": rng.standard_normal((40, 40)).astype(np.float16),
        "steps": np.array([7], np.int64),
    }


SPEC = {
    "layer1.weight": ((40, 1), "float32"),
    "layer1.bias": ((40,), np.float32),
    "layer2.weight": ((40, 40), "float16"),
    "steps": ((1,), "int64"),
}
META = make_metadata("sine-mlp-40x40", quant_scales={"layer2.weight": 0.05}, top_p=0.1)


def test_round_trip_keeps_values_dtypes_and_metadata():
    tensors, meta = decode_tensors(encode_tensors(weights(), META), spec=SPEC)
    for name, array in weights().items():
        assert tensors[name].dtype == array.dtype
        np.testing.assert_array_equal(tensors[name], array)
        assert tensors[name].flags.writeable
    assert meta == META
    header = read_metadata(meta)
    assert header.arch == "sine-mlp-40x40"
    assert header.quant_scales == {"layer2.weight": 0.05}
    assert header.top_p == 0.1


def test_insertion_order_does_not_change_the_bytes():
    forward = weights()
    backward = dict(reversed(list(forward.items())))
    meta_backward = dict(reversed(list(META.items())))
    assert encode_tensors(forward, META) == encode_tensors(backward, meta_backward)


_CHILD = """
import hashlib, sys
import numpy as np
from chainml.storage.tensors import encode_tensors
meta = {f"key{i}": str(i) for i in range(12)}
data = encode_tensors({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, meta)
sys.stdout.write(hashlib.sha256(data).hexdigest())
"""


def test_bytes_are_identical_across_processes():
    """safetensors itself writes metadata in a per-process random order; we must not."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        for _ in range(4)
    }
    assert len(digests) == 1


def test_canonical_header_is_sorted_compact_and_aligned():
    data = encode_tensors(weights(), META)
    size = int.from_bytes(data[:8], "little")
    assert size % 8 == 0
    header = json.loads(data[8 : 8 + size])
    assert list(header["__metadata__"]) == sorted(META)
    offsets = [header[n]["data_offsets"][0] for n in header if n != "__metadata__"]
    assert offsets == sorted(offsets)
    assert b": " not in data[8 : 8 + size] and b", " not in data[8 : 8 + size]


def test_same_tensors_same_cid():
    assert file_cid(encode_tensors(weights(), META)) == file_cid(encode_tensors(weights(), META))
    changed = weights()
    changed["steps"] = np.array([8], np.int64)
    assert file_cid(encode_tensors(changed, META)) != file_cid(encode_tensors(weights(), META))


def test_big_endian_input_is_stored_little_endian():
    array = np.arange(4, dtype=">f4")
    tensors, _ = decode_tensors(encode_tensors({"x": array}))
    assert tensors["x"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(tensors["x"], array)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 7,
        (10**9).to_bytes(8, "little") + b"{}",
        (5).to_bytes(8, "little") + b"nope!",
        (2).to_bytes(8, "little") + b"[]",
        (47).to_bytes(8, "little")
        + b'{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'[:47],
        b"\x8a\x01\x00\x00\x00\x00\x00\x00" + b"\x80\x04\x95" * 46,  # a pickle is not a payload
    ],
    ids=["empty", "short", "huge-header", "not-json", "not-object", "truncated", "pickle"],
)
def test_malformed_bytes_are_an_integrity_error(data: bytes):
    with pytest.raises(IntegrityError, match="not valid safetensors"):
        decode_tensors(data)


def test_data_section_shorter_than_declared_is_rejected():
    good = encode_tensors({"x": np.ones(16, np.float32)})
    with pytest.raises(IntegrityError, match="not valid safetensors"):
        decode_tensors(good[:-4])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected_on_decode(bad: float):
    array = np.ones((2, 2), np.float32)
    array[1, 0] = bad
    payload = raw_safetensors({"layer1.weight": array})
    with pytest.raises(IntegrityError, match=r"'layer1\.weight' contains (NaN|Inf)"):
        decode_tensors(payload)


def test_non_finite_values_are_never_encoded():
    with pytest.raises(IntegrityError, match="'b' contains NaN"):
        encode_tensors({"a": np.ones(2, np.float32), "b": np.array([np.nan], np.float16)})


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda t: t.update({"layer1.bias": np.zeros(41, np.float32)}), "'layer1.bias' has shape"),
        (lambda t: t.update({"layer1.bias": np.zeros((40, 1), np.float32)}), "'layer1.bias'"),
        (lambda t: t.update({"steps": np.array([7], np.int32)}), "'steps' has dtype int32"),
        (lambda t: t.pop("layer2.weight"), "'layer2.weight' is missing"),
        (lambda t: t.update({"extra": np.zeros(1, np.float32)}), "'extra' is not in the model"),
    ],
    ids=["shape", "rank", "dtype", "missing", "extra"],
)
def test_spec_violations_name_the_tensor(change, needle: str):
    tensors = weights()
    change(tensors)
    with pytest.raises(IntegrityError, match=needle):
        decode_tensors(encode_tensors(tensors, META), spec=SPEC)


def test_spec_wildcards_accept_sparse_updates_of_any_length():
    idx_name, val_name = sparse_names("layer2.weight")
    update = {idx_name: np.array([3, 17, 1599], np.int32), val_name: np.ones(3, np.float16)}
    spec = {idx_name: ((None,), "int32"), val_name: ((None,), "float16")}
    tensors, meta = decode_tensors(encode_tensors(update, make_metadata("a", top_p=0.01)), spec)
    check_spec(tensors, spec)
    assert read_metadata(meta).top_p == 0.01
    assert idx_name == "layer2.weight.indices"


def test_non_numpy_and_object_arrays_are_refused():
    with pytest.raises(IntegrityError, match="not a numpy array"):
        encode_tensors({"x": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(IntegrityError, match="unsupported dtype object"):
        encode_tensors({"x": np.array([{"pickle": "me"}], dtype=object)})


def test_size_limit_applies_before_parsing():
    data = encode_tensors({"x": np.zeros(1000, np.float32)})
    with pytest.raises(ObjectTooLargeError, match="tensor payload"):
        decode_tensors(data, max_bytes=len(data) - 1)


def test_metadata_must_be_strings_and_well_formed():
    with pytest.raises(IntegrityError, match="str to str"):
        encode_tensors({"x": np.zeros(1, np.float32)}, {"n": 1})  # type: ignore[dict-item]
    with pytest.raises(IntegrityError, match=r"chainml\.arch"):
        read_metadata({"chainml.format": "1"})
    with pytest.raises(IntegrityError, match="malformed"):
        read_metadata({"chainml.format": "1", KEY_ARCH: "a", "chainml.quant": "[1"})
    with pytest.raises(IntegrityError, match="not finite"):
        make_metadata("a", quant_scales={"w": float("nan")})
    with pytest.raises(IntegrityError, match="top_p"):
        make_metadata("a", top_p=0.0)


def test_tensors_go_through_a_store_unchanged(embedded):
    data = encode_tensors(weights(), META)
    cid = embedded.put(data)
    assert hashlib.sha256(embedded.get(cid)).digest() == hashlib.sha256(data).digest()
    tensors, _ = decode_tensors(embedded.get(cid), spec=SPEC)
    np.testing.assert_array_equal(tensors["layer1.weight"], weights()["layer1.weight"])
