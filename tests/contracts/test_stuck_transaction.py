"""A transaction left pending in a dev chain's pool (Anvil's automining can miss a ready one)
is mined by the sender after a while, instead of hanging the round until the receipt times out.

The stuck state is made on the real Anvil by turning automining off: a ready transaction then
sits in the pool, and only a new block includes it, which is what the missed-mining race leaves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from web3 import Web3
from web3.exceptions import TimeExhausted

from chainml.chain.client import Ledger, is_dev_chain, wait_receipt


@pytest.fixture
def automine_off(w3: Web3, ledger: Ledger) -> Iterator[None]:
    """Automining off for the test; back on (and the pool mined) afterwards, before the
    ledger fixture reverts its snapshot."""
    assert w3.provider.make_request("evm_setAutomine", [False]).get("error") is None
    try:
        yield
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])


def pending_transfer(w3: Web3, sender: str, receiver: str) -> bytes:
    tx_hash = w3.eth.send_transaction({"from": sender, "to": receiver, "value": 1})
    assert w3.eth.get_transaction(tx_hash)["blockNumber"] is None  # in the pool, not mined
    return tx_hash


def test_a_pending_transaction_is_mined_by_its_waiting_sender(
    w3: Web3, ledger: Ledger, accounts: list[str], automine_off: None
) -> None:
    assert is_dev_chain(w3)
    tx_hash = pending_transfer(w3, accounts[8], accounts[9])
    started = time.monotonic()
    receipt = wait_receipt(w3, tx_hash, timeout=20, mine_after=0.5)
    assert receipt["status"] == 1 and receipt["transactionHash"] == tx_hash
    assert time.monotonic() - started < 15


def test_must_hurt_without_mining_the_sender_waits_out_its_timeout(
    w3: Web3, ledger: Ledger, accounts: list[str], automine_off: None
) -> None:
    tx_hash = pending_transfer(w3, accounts[8], accounts[9])
    with pytest.raises(TimeExhausted):
        wait_receipt(w3, tx_hash, timeout=2, mine_after=None)
    assert w3.eth.get_transaction(tx_hash)["blockNumber"] is None  # still stuck


def test_a_mined_transaction_needs_no_extra_block(
    w3: Web3, ledger: Ledger, accounts: list[str]
) -> None:
    tx_hash = w3.eth.send_transaction({"from": accounts[8], "to": accounts[9], "value": 1})
    receipt = wait_receipt(w3, tx_hash, timeout=20, mine_after=0.5)
    assert w3.eth.block_number == receipt["blockNumber"]
