"""Hostile JSON payloads (batch leaves, node lists, reputation tables, metrics files): whatever
bytes an adversary stores, each decoder raises a one-line ``IntegrityError`` and nothing else. Deep
nesting (a RecursionError inside ``json``), huge numbers (1e999 is infinity, whose ``int`` is an
OverflowError) and wrong types in every field are among the inputs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainml.errors import IntegrityError
from chainml.inspection.batches import decode_leaves as inspect_leaves
from chainml.protocol.payloads import (
    LEAVES_FORMAT,
    NODE_LIST_FORMAT,
    decode_leaves,
    decode_node_list,
)
from chainml.protocol.round_metrics import RoundMetrics
from chainml.protocol.settlement import TABLE_FORMAT, ReputationTable
from chainml.storage.cid import cid_str
from chainml.storage.unixfs import file_cid

DECODERS: dict[str, Callable[[bytes], object]] = {
    "leaves": decode_leaves,
    "leaves (inspect)": inspect_leaves,
    "node list": decode_node_list,
    "reputation table": ReputationTable.decode,
    "metrics file": RoundMetrics.decode,
}
LEAF = {
    "round": 1, "node": "0x" + "11" * 20, "baseVersion": 0, "updateDigest": "0x" + "22" * 32,
    "updateCodec": 0x55, "numSamples": 5, "lossBefore": 1, "lossAfter": 1, "nonce": 0,
    "r": "0x" + "33" * 32, "s": "0x" + "44" * 32, "v": 27,
}  # fmt: skip
VALID = {
    "leaves": {"format": LEAVES_FORMAT, "round": 1, "leaves": [LEAF]},
    "leaves (inspect)": {"format": LEAVES_FORMAT, "round": 1, "leaves": [LEAF]},
    "node list": {"format": NODE_LIST_FORMAT, "round": 1, "kind": "included", "nodes": ["0x1"]},
    "reputation table": {
        "format": TABLE_FORMAT, "round": 1, "parent_root": "0x" + "00" * 32, "initial": 1000,
        "scores": [["0x" + "11" * 20, 1000]],
    },
    "metrics file": RoundMetrics(
        round=1, base_version=0, base_weights=cid_str(file_cid(b"base")),
        weights=cid_str(file_cid(b"new")), aggregation="guard", rule_id=6, committed=5,
        included=4, excluded=1, invalid=1, rejected_leaves=0, samples=20,
        reported_loss_before=4.5, reported_loss_after=0.5,
    ).as_json(),
}  # fmt: skip
HOSTILE_VALUES = [
    None, [], {}, "", "x", -1, 2**70, 1e308, float("inf"), float("nan"), True,
    [[[[[]]]]], {"a": {"b": {}}}, "0x" + "zz" * 32,
]  # fmt: skip


def hostile_number(digits: int) -> bytes:
    return b"1" + b"0" * digits


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def assert_clean_failure(decode: Callable[[bytes], object], data: bytes) -> None:
    try:
        decode(data)
    except IntegrityError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("kind", DECODERS)
def test_deep_nesting_is_a_clear_error(kind: str) -> None:
    for depth in (1_000, 100_000):
        with pytest.raises(IntegrityError):
            DECODERS[kind](deep(depth))
        nested = json.dumps(VALID[kind]).replace('"round": 1', '"round": ' + deep(depth).decode())
        with pytest.raises(IntegrityError):
            DECODERS[kind](nested.encode())


@pytest.mark.parametrize("kind", DECODERS)
def test_huge_numbers_are_a_clear_error(kind: str) -> None:
    for number in (b"1e999", b"-1e999", hostile_number(5_000), b"1" + b"0" * 400):
        data = json.dumps(VALID[kind]).replace('"round": 1', '"round": __N__').encode()
        data = data.replace(b"__N__", number)
        assert_clean_failure(DECODERS[kind], data)


@pytest.mark.parametrize("kind", DECODERS)
def test_every_field_with_a_hostile_value_is_a_clear_error(kind: str) -> None:
    """Each top-level field, and for leaves each leaf field, replaced by each hostile value."""
    base = VALID[kind]
    variants = []
    for key in base:
        variants += [base | {key: value} for value in HOSTILE_VALUES]
        variants.append({k: v for k, v in base.items() if k != key})
    if kind.startswith("leaves"):
        for key in LEAF:
            variants += [base | {"leaves": [LEAF | {key: v}]} for v in HOSTILE_VALUES]
    for variant in variants:
        assert_clean_failure(DECODERS[kind], json.dumps(variant).encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_fuzz_random_bytes(kind: str, data: bytes) -> None:
    assert_clean_failure(DECODERS[kind], data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(DECODERS)), key=st.text(max_size=12), value=json_values)
def test_fuzz_valid_files_with_one_field_replaced(kind: str, key: str, value: object) -> None:
    base = VALID[kind]
    field = sorted(base)[hash(key) % len(base)] if key else key
    assert_clean_failure(DECODERS[kind], json.dumps(base | {field: value}).encode())


def version_bytes() -> bytes:
    from chainml.meta.federated import ServerState
    from chainml.meta.models import get_model
    from chainml.meta.recipe import Recipe
    from chainml.protocol.payloads import encode_weights

    model = get_model("mlp-sine")
    state = ServerState.zeros(model.spec.num_params)
    return encode_weights(model.init(0), "mlp-sine", recipe=Recipe(), state=state)


def with_metadata(data: bytes, key: str, value: str) -> bytes:
    from chainml.storage.tensors import decode_tensors, encode_tensors

    tensors, metadata = decode_tensors(data)
    return encode_tensors(tensors, metadata | {key: value})


@pytest.mark.parametrize(
    "value",
    [
        deep(100_000).decode(),
        '{"b1_power": "0x1p-1", "b2_power": "0x1p-1", "step": 1e999}',
        '{"b1_power": "0x1p-1", "b2_power": "0x1p-1", "step": ' + "9" * 5000 + "}",
        '{"step": ' + deep(100_000).decode() + "}",
        "null",
        "[]",
    ],
    ids=["deep", "inf-step", "long-int", "deep-field", "null", "list"],
)
@pytest.mark.parametrize("key", ["chainml.recipe", "chainml.server"])
def test_a_version_file_with_hostile_recipe_or_server_state_is_a_clear_error(
    key: str, value: str
) -> None:
    from chainml.protocol.payloads import decode_version

    data = version_bytes()
    decode_version(data)  # the genuine file decodes: the change below is what fails
    with pytest.raises(IntegrityError):
        decode_version(with_metadata(data, key, value))


def test_a_tensor_payload_whose_header_is_deeply_nested_is_a_clear_error() -> None:
    from chainml.protocol.payloads import decode_update, decode_version

    header = deep(100_000)
    data = len(header).to_bytes(8, "little") + header
    for decode in (decode_version, lambda d: decode_update(d, "mlp-sine")):
        with pytest.raises(IntegrityError):
            decode(data)
