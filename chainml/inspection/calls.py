"""View calls in bulk: one JSON-RPC batch per chunk instead of one round trip per call.

``inspect nodes`` on a thousand-node fleet needs a thousand ``nodeInfo`` calls; batching keeps
that to seconds on a remote RPC. Endpoints that refuse batches get the calls one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from web3 import Web3
from web3.contract.contract import ContractFunction

BATCH_SIZE = 100


def call_many(
    w3: Web3,
    calls: Sequence[ContractFunction],
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Results of ``calls`` in order."""
    out: list[Any] = []
    for lo in range(0, len(calls), BATCH_SIZE):
        chunk = calls[lo : lo + BATCH_SIZE]
        try:
            with w3.batch_requests() as batch:
                for fn in chunk:
                    batch.add(fn)
                out.extend(batch.execute())
        except Exception:  # no batch support on this endpoint: one by one
            out.extend(fn.call() for fn in chunk)
        if progress is not None:
            progress(len(out), len(calls))
    return out


def call_structs(
    w3: Web3,
    calls: Sequence[ContractFunction],
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Results of views that return one struct, as dicts keyed by the ABI's component names."""
    results = call_many(w3, calls, progress)
    return [_named(fn, raw) for fn, raw in zip(calls, results, strict=True)]


def _named(fn: ContractFunction, value: Any) -> dict[str, Any]:
    components = fn.abi["outputs"][0]["components"]
    return {c["name"]: item for c, item in zip(components, value, strict=True)}
