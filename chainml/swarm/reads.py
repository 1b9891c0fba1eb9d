"""Bulk chain reads: one JSON-RPC batch per chunk instead of one round trip per node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from chainml.chain.client import Ledger
from chainml.errors import ChainError

CHUNK = 250


def node_infos(
    ledger: Ledger, addresses: Sequence[str], block: int | None = None
) -> dict[str, dict[str, Any]]:
    """``nodeInfo`` of every address (at ``block``, default latest), keyed by lower-case address."""
    abi = next(
        i for i in ledger.ledger.abi if i.get("type") == "function" and i["name"] == "nodeInfo"
    )
    component = abi["outputs"][0]
    names = [c["name"] for c in component["components"]]
    types = ["(" + ",".join(c["type"] if c["type"] != "tuple" else
             "(" + ",".join(x["type"] for x in c["components"]) + ")"
             for c in component["components"]) + ")"]  # fmt: skip
    tag = "latest" if block is None else hex(block)
    unique = list(dict.fromkeys(a.lower() for a in addresses))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        requests = [
            (
                "eth_call",
                [
                    {
                        "to": ledger.ledger.address,
                        "data": ledger.ledger.encode_abi("nodeInfo", [to_checksum_address(a)]),
                    },
                    tag,
                ],
            )
            for a in chunk
        ]
        responses = ledger.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
        if not isinstance(responses, list):
            raise ChainError(f"the chain refused a batch of nodeInfo reads: {responses}")
        for address, response in zip(chunk, sorted(responses, key=lambda r: r["id"]), strict=True):
            if "error" in response:
                raise ChainError(f"nodeInfo({address}) at {tag} failed: {response['error']}")
            (values,) = decode(types, bytes.fromhex(response["result"][2:]))
            out[address] = dict(zip(names, values, strict=True))
    return out


REPUTATION_CHANGED = keccak(text="ReputationChanged(address,uint256,uint8,int64,int64)")


def reputations_before(
    ledger: Ledger, addresses: Sequence[str], block: int, from_block: int = 0
) -> dict[str, int]:
    """Each address's reputation as it stood before ``block``, rebuilt from events alone.

    Reads the last ``ReputationChanged`` score of each account in ``[from_block, block)``, with
    the registry's initial reputation for accounts that have none. Unlike a state read at an
    old block, this works on any node, including an Anvil restarted from a state file.
    """
    initial = int(ledger.ledger.functions.initialReputation().call())
    unique = list(dict.fromkeys(a.lower() for a in addresses))
    scores = dict.fromkeys(unique, initial)
    if block <= from_block:
        return scores
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        topics = [
            "0x" + REPUTATION_CHANGED.hex(),
            ["0x" + bytes.fromhex(a[2:]).rjust(32, b"\0").hex() for a in chunk],
        ]
        logs = ledger.w3.eth.get_logs(
            {
                "address": ledger.ledger.address,
                "fromBlock": from_block,
                "toBlock": block - 1,
                "topics": topics,  # type: ignore[typeddict-item]
            }
        )
        for log in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
            account = "0x" + bytes(log["topics"][1])[-20:].hex()
            _delta, score = decode(["int64", "int64"], bytes(log["data"]))
            scores[account] = int(score)
    return scores


_REGISTRY_EVENTS = ("NodeRegistered", "NodeDeactivated", "NodeReactivated", "NodeGatewayChanged")


def registry_at(
    ledger: Ledger, addresses: Sequence[str], block: int, from_block: int = 0
) -> dict[str, dict[str, Any]]:
    """Each address's registry state (registered, active, gateway) as of the end of ``block``,
    rebuilt from registry events alone, so it is the same on any node, any time later."""
    wanted = {a.lower() for a in addresses}
    state = {a: {"registered": False, "active": False, "gateway": _ZERO} for a in wanted}
    logs: list[tuple[int, int, str, dict[str, Any]]] = []
    for name in _REGISTRY_EVENTS:
        event = getattr(ledger.ledger.events, name)
        for e in event.get_logs(from_block=from_block, to_block=block):
            logs.append((int(e["blockNumber"]), int(e["logIndex"]), name, dict(e["args"])))
    for _b, _i, name, args in sorted(logs, key=lambda x: (x[0], x[1])):
        node = str(args["node"]).lower()
        if node not in wanted:
            continue
        entry = state[node]
        if name == "NodeRegistered":
            entry.update(registered=True, active=True, gateway=str(args["gateway"]))
        elif name == "NodeDeactivated":
            entry["active"] = False
        elif name == "NodeReactivated":
            entry["active"] = True
        else:
            entry["gateway"] = str(args["gateway"])
    return state


_ZERO = "0x0000000000000000000000000000000000000000"
