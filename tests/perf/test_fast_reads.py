"""Hand-encoded ``nodeInfo`` calls equal web3's ``encode_abi`` (the slow path they replace)."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from web3 import Web3

from chainml.chain import reader as reads
from chainml.chain.reader import ChainReader

OFFLINE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_node_info_call_data_equals_web3() -> None:
    offline = ChainReader(Web3(), OFFLINE, OFFLINE)  # encodes only: no chain needed
    contract = offline.ledger
    abi = next(i for i in contract.abi if i.get("type") == "function" and i["name"] == "nodeInfo")
    selector = "0x" + function_abi_to_4byte_selector(abi).hex()
    for _ in range(200):
        address = "0x" + os.urandom(20).hex()
        expected = contract.encode_abi("nodeInfo", [to_checksum_address(address)])
        assert offline._node_call(selector, address) == expected
    with pytest.raises(ValueError):  # not an address: the same error as before
        offline._node_call(selector, "0x1234")


def _register(ledger, admin: str, tag: bytes) -> str:  # type: ignore[no-untyped-def]
    address = Account.from_key(keccak(b"chainml-perf-" + tag)).address
    ledger.register_node(address, (keccak(tag), 0x55), admin)
    return address


def test_registry_cache_follows_the_chain(ledger, admin: str, w3) -> None:  # type: ignore[no-untyped-def]
    reads._registry_cache.clear()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    first = _register(ledger, admin, b"a")
    height = w3.eth.block_number
    assert ledger.registry_at([first], height)[first.lower()].registered
    cached_upto = next(iter(reads._registry_cache.values()))[0]
    assert cached_upto == height
    # The chain loses that block and mines another at the same height: the cache must see it.
    w3.provider.make_request("evm_revert", [snapshot])
    ledger.tx.resync(admin)
    other = _register(ledger, admin, b"b")
    assert w3.eth.block_number == height
    state = ledger.registry_at([first, other], height)
    assert not state[first.lower()].registered
    assert state[other.lower()].registered
    # A later block: only the new events are read, and the answer equals an uncached read.
    third = _register(ledger, admin, b"c")
    cached = ledger.registry_at([first, other, third], w3.eth.block_number)
    reads._registry_cache.clear()
    assert cached == ledger.registry_at([first, other, third], w3.eth.block_number)
    assert cached[third.lower()].registered
    # An older block than the cache's end is answered from the cache, as of that block.
    assert not ledger.registry_at([third], height)[third.lower()].registered
