"""The fast EIP-712 path (hand-packed struct hash, coincurve signing) equals eth-abi/eth-account."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chainml.chain import eip712
from chainml.chain.eip712 import (
    COMMITMENT_TYPEHASH,
    Commitment,
    address_of_key,
    digest,
    domain_separator,
    sign_commitment,
    struct_hash,
    typed_data,
)

CHAIN_ID = 31337
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SEPARATOR = domain_separator(CHAIN_ID, LEDGER)
N = 2**256 - 432420386565659656852420866394968145599  # secp256k1 order (keys below it)


def slow_struct_hash(c: Commitment) -> bytes:
    """The reference: eth-abi's encoder over the struct's values."""
    return keccak(encode(eip712._ABI_TYPES, [COMMITMENT_TYPEHASH, *c.values()]))


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=2**bits - 1)


commitments = st.builds(
    Commitment,
    round=uint(256),
    node=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    base_version=uint(256),
    update_digest=st.binary(min_size=32, max_size=32),
    update_codec=uint(64),
    num_samples=uint(32),
    loss_before=uint(64),
    loss_after=uint(64),
    nonce=uint(64),
)
private_keys = st.integers(min_value=1, max_value=N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(max_examples=300, deadline=None, database=None)
@given(commitments)
def test_struct_hash_equals_eth_abi(c: Commitment) -> None:
    assert eip712._packed_fields(c) is not None  # the fast path is what runs
    assert struct_hash(c) == slow_struct_hash(c)
    checksummed = c.with_(node=Account.from_key(b"\x01" * 32).address)
    assert struct_hash(checksummed) == slow_struct_hash(checksummed)


@settings(max_examples=60, deadline=None, database=None)
@given(commitments, private_keys)
def test_signature_equals_eth_account_typed_data_signing(c: Commitment, key: bytes) -> None:
    signed = sign_commitment(key, c, SEPARATOR)
    message = encode_typed_data(full_message=typed_data(c, CHAIN_ID, LEDGER))
    reference = Account.sign_message(message, key)
    assert (signed.r, signed.s, signed.v) == (
        reference.r.to_bytes(32, "big"),
        reference.s.to_bytes(32, "big"),
        reference.v,
    )
    assert signed.signature == bytes(reference.signature)
    assert Account._recover_hash(digest(c, SEPARATOR), signature=signed.signature) == (
        Account.from_key(key).address
    )
    # The old path (eth-account signing the digest) gives the same bytes too.
    old = Account.unsafe_sign_hash(digest(c, SEPARATOR), key)
    assert old.signature == signed.signature
    # A LocalAccount and a hex key take the same path or the fallback, with the same result.
    assert sign_commitment(Account.from_key(key), c, SEPARATOR) == signed
    assert sign_commitment("0x" + key.hex(), c, SEPARATOR) == signed


@settings(max_examples=50, deadline=None, database=None)
@given(private_keys)
def test_address_of_key_equals_eth_account(key: bytes) -> None:
    assert address_of_key(key) == Account.from_key(key).address


def test_unusual_values_fall_back_to_eth_abi() -> None:
    base = Commitment(7, LEDGER.lower(), 3, b"\x11" * 32, 0x55, 20, 123, 456, 9)
    short = base.with_(update_digest=b"\x22" * 31)  # eth-abi right-pads bytes32
    array = base.with_(update_digest=bytearray(b"\x33" * 32))
    for c in (short, array):
        assert eip712._packed_fields(c) is None
        assert struct_hash(c) == slow_struct_hash(c)
    for bad in (base.with_(nonce=2**64), base.with_(num_samples=-1), base.with_(round=True)):
        assert eip712._packed_fields(bad) is None
        with pytest.raises(EncodingError):
            struct_hash(bad)
    with pytest.raises(ValueError):
        struct_hash(base.with_(node="0x1234"))


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_keccak256_equals_eth_utils(data: bytes) -> None:
    assert eip712.keccak256(data) == keccak(data)


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.binary(min_size=32, max_size=32), st.binary(min_size=20, max_size=20))  # fmt: skip
def test_merkle_leaves_equal_eth_abi_encoding(a: bytes, b: bytes, c: bytes, raw: bytes) -> None:
    from chainml.chain import merkle

    assert merkle.commitment_leaf(a, b, c) == keccak(
        keccak(encode(["bytes32", "bytes32", "bytes32"], [a, b, c]))
    )
    for address in ("0x" + raw.hex(), Account.from_key(b"\x02" * 32).address, "0X" + raw.hex()):
        expected = keccak(keccak(encode(["address"], [to_checksum_address(address)])))
        assert merkle.address_leaf(address) == expected
    assert merkle.hash_pair(a, b) == keccak(min(a, b) + max(a, b))
    assert (
        merkle.commitment_leaf(a[:31], b, c)
        == keccak(  # eth-abi pads short bytes32
            keccak(encode(["bytes32", "bytes32", "bytes32"], [a[:31], b, c]))
        )
    )


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(min_size=20, max_size=20), st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_reputation_leaf_equals_eth_abi_encoding(raw: bytes, score: int) -> None:
    from chainml.chain import merkle

    address = "0x" + raw.hex()
    expected = keccak(keccak(encode(["address", "int64"], [to_checksum_address(address), score])))
    assert merkle.reputation_leaf(address, score) == expected
    assert merkle.reputation_leaf(to_checksum_address(address), score) == expected


def test_reputation_leaf_out_of_range_raises_as_before() -> None:
    from chainml.chain import merkle

    with pytest.raises(EncodingError):
        merkle.reputation_leaf("0x" + "11" * 20, 2**63)
