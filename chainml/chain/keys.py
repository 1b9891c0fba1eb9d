"""Deterministic development keys for simulated nodes (never use them on a real network)."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

DEV_NODE_SEED = "chainml-dev-node"


def dev_node_account(index: int, seed: str = DEV_NODE_SEED) -> LocalAccount:
    """The ``index``-th simulated node key: keccak256(f"{seed}-{index}")."""
    return Account.from_key(keccak(text=f"{seed}-{index}"))


def dev_node_accounts(count: int, start: int = 0, seed: str = DEV_NODE_SEED) -> list[LocalAccount]:
    return [dev_node_account(i, seed) for i in range(start, start + count)]
