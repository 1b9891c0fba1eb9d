"""The fast paths of a 10,000-node round give exactly what the generic code they replace gives:
batched sparsification, EIP-55 checksums, signer recovery, static ABI decoding and registry
events read from their topics."""

from __future__ import annotations

import os

import numpy as np
import pytest
from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chainml.chain import reader
from chainml.chain.eip712 import checksum_address, recover_signer
from chainml.chain.records import REGISTRY_EVENTS
from chainml.chain.words import decode_static, topic_address
from chainml.meta.models import model_spec
from chainml.meta.sparse import MAX_SCALE, encode_sparse, sparsify, sparsify_rows
from tests.contracts.conftest import cid

ARCH = "mlp-sine"
NODE_INFO = ["(bool,bool,address,uint256,uint256,int64,uint256,(bytes32,uint64),bool)"]


def test_sparsify_rows_equals_sparsify_row_by_row() -> None:
    size = model_spec(ARCH).num_params
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((40, size)).astype(np.float32)
    rows[1] = np.round(rows[1])  # many ties at the threshold: lower indices win
    rows[2] = 0.0  # nothing to select: the lowest indices, scale 1
    rows[3, :10] = 2 * MAX_SCALE * 127  # a diverging row: rescaled on the one-row path
    rows[4] = np.float32(0.5) * rng.integers(-2, 3, size)
    rows[5, 80:] = 0.0  # fewer non-zeros than k
    rows[6] = -rows[7]
    for granularity in ("param", "update"):
        for fraction in (0.1, 0.01, 1.0):
            batched = sparsify_rows(rows, ARCH, fraction, granularity)
            single = [sparsify(row, ARCH, fraction, granularity) for row in rows]
            assert [encode_sparse(u) for u in batched] == [encode_sparse(u) for u in single]
            assert all(u.nbytes() == len(encode_sparse(u)) for u in batched)
    bad = rows.copy()
    bad[9, 3] = np.nan
    with pytest.raises(Exception, match="NaN or infinity"):
        sparsify_rows(bad, ARCH, 0.1)


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(min_size=20, max_size=20))
def test_checksum_address_equals_eth_utils(raw: bytes) -> None:
    expected = to_checksum_address(raw)
    assert checksum_address(raw) == expected
    assert checksum_address("0x" + raw.hex()) == expected
    assert checksum_address("0x" + raw.hex().upper()) == expected
    assert checksum_address(expected) == expected


def test_checksum_address_refuses_what_eth_utils_refuses() -> None:
    for bad in ("0x1234", "not an address", b"\x01" * 19):
        with pytest.raises(ValueError):
            to_checksum_address(bad)
        with pytest.raises(ValueError):
            checksum_address(bad)


def test_recover_signer_matches_eth_keys_and_refuses_what_it_refuses() -> None:
    account = Account.create()
    for _ in range(20):
        digest = os.urandom(32)
        sig = Account.unsafe_sign_hash(digest, account.key)
        r, s = sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big")
        recovered = recover_signer(digest, r, s, sig.v)
        assert checksum_address(recovered) == account.address
        reference = keys.Signature(vrs=(sig.v - 27, sig.r, sig.s))
        assert reference.recover_public_key_from_msg_hash(digest).to_canonical_address() == (
            recovered
        )
        other = recover_signer(digest, r, s, 55 - sig.v)  # the other parity: another key
        assert other != recovered
    order = 2**256 - 432420386565659656852420866394968145599
    for r, s, v in ((1, 1, 26), (order, 1, 27), (1, order, 28), (0, 0, 27)):
        with pytest.raises(ValueError):
            recover_signer(b"\x01" * 32, r.to_bytes(32, "big"), s.to_bytes(32, "big"), v)
        with pytest.raises(BadSignature):  # what the gatherers checked with before
            keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(b"\x01" * 32)


node_views = st.tuples(
    st.booleans(),
    st.booleans(),
    st.binary(min_size=20, max_size=20).map(to_checksum_address),
    st.integers(0, 2**256 - 1),
    st.integers(0, 2**256 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**256 - 1),
    st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1)),
    st.booleans(),
)


@settings(max_examples=200, deadline=None, database=None)
@given(node_views)
def test_static_decoding_equals_eth_abi(view: tuple) -> None:  # type: ignore[type-arg]
    data = encode(NODE_INFO, [view])
    assert decode_static(NODE_INFO, data) == decode(NODE_INFO, data)


def test_static_decoding_refuses_what_eth_abi_refuses() -> None:
    word = (1).to_bytes(32, "big")
    cases = [
        (["bool"], (2).to_bytes(32, "big")),
        (["address"], b"\x01" + bytes(31)),
        (["uint64"], (2**64).to_bytes(32, "big")),
        (["int64"], (2**63).to_bytes(32, "big")),
        (["bytes8"], bytes(8) + b"\x01" + bytes(23)),
        (["uint256", "uint256"], word),  # too short
    ]
    for types, data in cases:
        with pytest.raises(DecodingError):
            decode(types, data)
        with pytest.raises(ValueError):
            decode_static(types, data)
    address = "0x" + "ab" * 20
    assert topic_address("0x" + bytes(12).hex() + address[2:]) == to_checksum_address(address)
    with pytest.raises(ValueError):
        topic_address("0x" + "01" * 32)


def test_registry_events_equal_web3s_decoding(ledger, admin: str, gateway: str) -> None:  # type: ignore[no-untyped-def]
    nodes = [Account.from_key(keccak(b"chainml-hot-%d" % i)).address for i in range(3)]
    for i, node in enumerate(nodes):
        ledger.register_node(node, (keccak(b"profile-%d" % i), 0x55), admin, gateway=gateway)
    ledger.deactivate_node(nodes[0], admin)
    ledger.reactivate_node(nodes[0], admin)
    ledger.set_node_gateway(nodes[1], None, admin)
    end = ledger.w3.eth.block_number
    reader._registry_cache.clear()
    fast = ledger.registry_events(end)
    slow = [e for record in REGISTRY_EVENTS for e in ledger.events(record, 0, end)]
    assert fast == sorted(slow, key=lambda e: e.position)
    assert {type(e) for e in fast} == set(REGISTRY_EVENTS)
    infos = ledger.node_infos(nodes)
    for node in nodes:
        assert infos[node.lower()] == ledger.node_info(node)  # web3's own call and decoding


def test_one_gateway_posts_many_batches_in_one_json_rpc_batch(  # type: ignore[no-untyped-def]
    ledger, make_node, sign, open_round, gateway
) -> None:
    """Explicit, consecutive nonces for one sender (before, every transaction of the batch got
    the same nonce and the node refused all but one: "replacement transaction underpriced")."""
    nodes = [make_node(gateway=gateway, fund=False) for _ in range(6)]
    round_id = open_round()
    parts = [[sign(n) for n in nodes[i : i + 2]] for i in range(0, 6, 2)]
    batches = [(part, cid(f"leaves-{i}")) for i, part in enumerate(parts)]
    receipts = ledger.post_batches(round_id, batches, gateway)
    assert [r["status"] for r in receipts] == [1, 1, 1]
    posted = ledger.batches(round_id)
    assert [b.leaf_count for b in posted] == [2, 2, 2]
    assert [b.root for b in posted] == [ledger.batch_tree(p).root for p in parts]
    late = make_node(gateway=gateway, fund=False)  # the gateway's next transaction still goes
    ledger.post_batch(round_id, [sign(late)], cid("after"), gateway)
    assert len(ledger.batches(round_id)) == 4
