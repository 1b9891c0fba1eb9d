"""Bulk chain reads: one JSON-RPC batch per chunk instead of one round trip per node."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address

from chainml.chain.client import Ledger
from chainml.chain.words import decode_static, topic_address
from chainml.errors import ChainError

CHUNK = 250


def node_infos(
    ledger: Ledger, addresses: Sequence[str], block: int | None = None
) -> dict[str, dict[str, Any]]:
    """``nodeInfo`` of every address (at ``block``, default latest), keyed by lower-case address.

    ``reputation`` is the chain's cached, last proven score. With a reputation book attached to
    the ledger (``settlement.attach``) and the latest block, it is each node's current score in
    the latest reputation table instead.
    """
    abi = next(
        i for i in ledger.ledger.abi if i.get("type") == "function" and i["name"] == "nodeInfo"
    )
    component = abi["outputs"][0]
    names = [c["name"] for c in component["components"]]
    types = ["(" + ",".join(c["type"] if c["type"] != "tuple" else
             "(" + ",".join(x["type"] for x in c["components"]) + ")"
             for c in component["components"]) + ")"]  # fmt: skip
    tag = "latest" if block is None else hex(block)
    # Encoded by hand: web3's encode_abi re-validates the whole ABI per call (~5 ms each).
    selector = "0x" + function_abi_to_4byte_selector(abi).hex()
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
                        "data": _address_call(ledger, selector, a),
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
            (values,) = decode_static(types, bytes.fromhex(response["result"][2:]))
            out[address] = dict(zip(names, values, strict=True))
    book = getattr(ledger, "reputation_book", None)
    if book is not None and block is None and out:
        table = book.table(ledger)
        for address, info in out.items():
            if info["registered"] and address in table:
                info["reputation"] = table.score(address)
    return out


_HEX_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def _address_call(ledger: Ledger, selector: str, address: str) -> str:
    """``nodeInfo(address)`` call data; anything but a plain address goes through web3 (and
    its error)."""
    if _HEX_ADDRESS.fullmatch(address):
        return selector + address[2:].rjust(64, "0")
    return str(ledger.ledger.encode_abi("nodeInfo", [to_checksum_address(address)]))


REPUTATION_CHANGED = keccak(text="ReputationChanged(address,uint256,uint8,int64,int64)")


def reputations_before(
    ledger: Ledger, addresses: Sequence[str], block: int, from_block: int = 0
) -> dict[str, int]:
    """Each address's on-chain penalty reputation (gateways, proposers, validators) as it
    stood before ``block``, rebuilt from events alone. Nodes' reputation is in the reputation
    tables instead (``chainml.protocol.settlement``); wave-1 code reads nodes through this.

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


def registry_at(
    ledger: Ledger, addresses: Sequence[str], block: int, from_block: int = 0
) -> dict[str, dict[str, Any]]:
    """Each address's registry state (registered, active, gateway) as of the end of ``block``,
    rebuilt from registry events alone, so it is the same on any node, any time later."""
    wanted = {a.lower() for a in addresses}
    state = {a: {"registered": False, "active": False, "gateway": _ZERO} for a in wanted}
    by_node = _node_index(_covering(ledger, block, from_block))
    for node in wanted:
        for b, _i, name, args in by_node.get(node, ()):
            if b > block:
                break  # each node's events are in chain order
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

RegistryLog = tuple[int, int, str, dict[str, Any]]
_registry_cache: dict[tuple[str, str, int], tuple[int, bytes, list[RegistryLog]]] = {}
"""Registry events already read by this process, per (RPC endpoint, ledger, from_block): up
to which block, that block's hash, and the events in chain order."""
_node_indexes: dict[int, tuple[list[RegistryLog], dict[str, list[RegistryLog]]]] = {}
"""Each cached event list's events per node (keyed by the list's id, which it pins), so a
batch's registry state costs its own nodes' events, not a pass over the whole fleet's."""


def _node_index(logs: list[RegistryLog]) -> dict[str, list[RegistryLog]]:
    found = _node_indexes.get(id(logs))
    if found is not None and found[0] is logs:
        return found[1]
    index: dict[str, list[RegistryLog]] = {}
    for log in logs:
        index.setdefault(str(log[3]["node"]).lower(), []).append(log)
    if len(_node_indexes) > 8:
        _node_indexes.clear()
    _node_indexes[id(logs)] = (logs, index)
    return index


def _block_hash(ledger: Ledger, block: int) -> bytes | None:
    """The hash of ``block`` (one raw ``eth_getBlockByNumber``: web3's block formatting cost
    more than the call)."""
    response = ledger.w3.provider.make_request("eth_getBlockByNumber", [hex(block), False])
    found = response.get("result") if isinstance(response, dict) else None
    return bytes.fromhex(found["hash"][2:]) if found and found.get("hash") else None


def registry_logs(ledger: Ledger, block: int, from_block: int = 0) -> list[RegistryLog]:
    """The registry events in ``[from_block, block]`` in chain order (block, log index, event,
    args), read once per process: a later call reads only the blocks it has not seen.

    A block hash commits to every block before it, so the cache is used only while the chain
    still has the same block where the cached events end (an Anvil restarted from an older
    state, or any reorganisation, makes this process read everything again).
    """
    return [log for log in _covering(ledger, block, from_block) if log[0] <= block]


def _covering(ledger: Ledger, block: int, from_block: int) -> list[RegistryLog]:
    """The registry events from ``from_block`` in chain order, through ``block`` at least
    (the cached list, which may run further)."""
    provider = getattr(ledger.w3.provider, "endpoint_uri", None) or str(id(ledger.w3))
    key = (str(provider), str(ledger.ledger.address), from_block)
    cached = _registry_cache.get(key)
    if cached is not None and _block_hash(ledger, cached[0]) != cached[1]:
        cached = None
    if cached is not None and block <= cached[0]:
        return cached[2]
    start, logs = (cached[0] + 1, list(cached[2])) if cached is not None else (from_block, [])
    end_hash = _block_hash(ledger, block)
    logs += _registry_events(ledger, start, block)
    if end_hash is not None and _block_hash(ledger, block) == end_hash:
        _registry_cache[key] = (block, end_hash, logs)
    return [log for log in logs if log[0] <= block]


_REGISTRY_TOPICS = {
    keccak(text=signature): signature.split("(")[0]
    for signature in (
        "NodeRegistered(address,address,bytes32,uint64)",
        "NodeDeactivated(address)",
        "NodeReactivated(address)",
        "NodeGatewayChanged(address,address,address)",
    )
}
_TOPIC_ARGS = {
    "NodeRegistered": ("node", "gateway"),
    "NodeDeactivated": ("node",),
    "NodeReactivated": ("node",),
    "NodeGatewayChanged": ("node", "previous", "gateway"),
}


def _registry_events(ledger: Ledger, start: int, end: int) -> list[RegistryLog]:
    """The registry events in ``[start, end]`` in chain order, from one ``eth_getLogs``: every
    argument but a registration's profile is an indexed address, read from its topic (web3's
    event decoding took about 3 ms a log)."""
    query = {
        "address": ledger.ledger.address,
        "fromBlock": hex(start),
        "toBlock": hex(end),
        "topics": [["0x" + t.hex() for t in _REGISTRY_TOPICS]],
    }
    # A raw request: web3's formatting of 10,000 logs cost more than decoding them.
    response = ledger.w3.provider.make_request("eth_getLogs", [query])  # type: ignore[arg-type]
    if not isinstance(response, dict) or "error" in response or "result" not in response:
        raise ChainError(f"reading the registry events failed: {response}")
    out: list[RegistryLog] = []
    for log in response["result"]:
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        name = _REGISTRY_TOPICS[topics[0]]
        names = _TOPIC_ARGS[name]
        args: dict[str, Any] = {
            arg: topic_address(topic) for arg, topic in zip(names, topics[1:], strict=True)
        }
        if name == "NodeRegistered":
            args["profileDigest"], args["profileCodec"] = decode_static(
                ["bytes32", "uint64"], bytes.fromhex(log["data"][2:])
            )
        out.append((int(log["blockNumber"], 16), int(log["logIndex"], 16), name, args))
    return sorted(out, key=lambda x: (x[0], x[1]))
