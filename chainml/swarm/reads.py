"""Bulk chain reads: one JSON-RPC batch per chunk instead of one round trip per node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address

from chainml.chain.client import Ledger

CHUNK = 250


def node_infos(ledger: Ledger, addresses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``nodeInfo`` of every address, keyed by lower-case address."""
    abi = next(
        i for i in ledger.ledger.abi if i.get("type") == "function" and i["name"] == "nodeInfo"
    )
    names = [c["name"] for c in abi["outputs"][0]["components"]]
    out: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(a.lower() for a in addresses))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        with ledger.w3.batch_requests() as batch:
            for address in chunk:
                batch.add(ledger.ledger.functions.nodeInfo(to_checksum_address(address)))
            results = batch.execute()
        for address, value in zip(chunk, results, strict=True):
            out[address] = dict(zip(names, value, strict=True))
    return out
