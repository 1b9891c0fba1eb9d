"""The JSON files the protocol puts on IPFS, encoded and decoded without the learning stack.

- **Batch leaves:** canonical JSON of the signed commitments behind a Merkle batch.
- **Node lists:** a round's included or excluded nodes, as proposed.
- **Reputation tables** are canonical JSON too (``canonical_json``; the table's format is
  :data:`TABLE_FORMAT`, its codec ``chainml.protocol.settlement.ReputationTable``), and so is
  the metrics file (:mod:`chainml.protocol.round_metrics`).

Canonical JSON (sorted keys, no spaces, ASCII) gives equal content an equal CID. Nothing here
imports torch, so ``chainml inspect``, the gateway and the challenger load without it; the
tensor payloads (versions, updates) are in :mod:`chainml.protocol.payloads`, which re-exports
these. Every decoder raises ``IntegrityError`` naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chainml.chain.eip712 import Commitment, SignedCommitment
from chainml.errors import IntegrityError

LEAVES_FORMAT = "chainml.batch-leaves.v1"
NODE_LIST_FORMAT = "chainml.node-list.v1"
TABLE_FORMAT = "chainml-reputation-table/1"


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace, ASCII)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_json(data: bytes, what: str) -> Any:
    """JSON from an adversary: invalid text, digits past Python's limit and nesting past the
    parser's recursion limit are all one-line ``IntegrityError``s."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise IntegrityError(f"{what} is nested too deeply") from None


# -- batch leaves ----------------------------------------------------------------------------


def _commitment_json(signed: SignedCommitment) -> dict[str, Any]:
    c = signed.commitment
    return {
        "round": c.round,
        "node": c.node,
        "baseVersion": c.base_version,
        "updateDigest": "0x" + c.update_digest.hex(),
        "updateCodec": c.update_codec,
        "numSamples": c.num_samples,
        "lossBefore": c.loss_before,
        "lossAfter": c.loss_after,
        "nonce": c.nonce,
        "r": "0x" + signed.r.hex(),
        "s": "0x" + signed.s.hex(),
        "v": signed.v,
    }


def encode_leaves(round_id: int, leaves: Sequence[SignedCommitment]) -> bytes:
    return canonical_json(
        {
            "format": LEAVES_FORMAT,
            "round": round_id,
            "leaves": [_commitment_json(s) for s in leaves],
        }
    )


def decode_leaves(data: bytes) -> tuple[int, list[SignedCommitment]]:
    raw = parse_json(data, "batch leaves")
    try:
        if raw["format"] != LEAVES_FORMAT:
            raise ValueError(f"format {raw['format']!r}")
        leaves = []
        for item in raw["leaves"]:
            commitment = Commitment(
                round=int(item["round"]),
                node=str(item["node"]),
                base_version=int(item["baseVersion"]),
                update_digest=bytes.fromhex(item["updateDigest"].removeprefix("0x")),
                update_codec=int(item["updateCodec"]),
                num_samples=int(item["numSamples"]),
                loss_before=int(item["lossBefore"]),
                loss_after=int(item["lossAfter"]),
                nonce=int(item["nonce"]),
            )
            leaves.append(
                SignedCommitment(
                    commitment,
                    bytes.fromhex(item["r"].removeprefix("0x")),
                    bytes.fromhex(item["s"].removeprefix("0x")),
                    int(item["v"]),
                )
            )
        return int(raw["round"]), leaves
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise IntegrityError(f"malformed batch leaves file: {exc}") from exc


# -- node lists ------------------------------------------------------------------------------


def encode_node_list(round_id: int, kind: str, nodes: Sequence[str]) -> bytes:
    return canonical_json(
        {"format": NODE_LIST_FORMAT, "round": round_id, "kind": kind, "nodes": list(nodes)}
    )


def decode_node_list(data: bytes) -> list[str]:
    raw = parse_json(data, "node list")
    if not isinstance(raw, dict) or raw.get("format") != NODE_LIST_FORMAT:
        raise IntegrityError("not a chainml node list")
    nodes = raw.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise IntegrityError("malformed node list: 'nodes' must be a list of addresses")
    return nodes
