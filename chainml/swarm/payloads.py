"""The bytes the swarm puts on IPFS, and how they are read back and checked.

- **Weights:** safetensors of every parameter (float32), keys = the model spec's names.
- **Update:** safetensors of a ``SparseUpdate`` (int8 values, bit mask, float32 scales).
- **Batch leaves:** canonical JSON of the signed commitments behind a Merkle batch.
- **Node lists / metrics:** canonical JSON (sorted keys, no spaces), so equal content always
  gets an equal CID.

Every decoder validates against the model spec (shapes, dtypes, NaN/Inf), never unpickles, and
raises ``IntegrityError`` naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from chainml.chain.eip712 import Commitment, SignedCommitment
from chainml.errors import IntegrityError, MetaLearningError
from chainml.meta.models import ModelSpec, Params, model_spec
from chainml.meta.sparse import SparseUpdate
from chainml.storage.tensors import decode_tensors, encode_tensors, make_metadata, read_metadata

WEIGHTS_KIND = "weights"
UPDATE_KIND = "sparse-update"
LEAVES_FORMAT = "chainml.batch-leaves.v1"
NODE_LIST_FORMAT = "chainml.node-list.v1"
MAX_UPDATE_BYTES = 4 * 1024 * 1024
MAX_WEIGHTS_BYTES = 64 * 1024 * 1024


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace, ASCII)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}") from exc


# -- weights ---------------------------------------------------------------------------------


def encode_weights(params: Mapping[str, torch.Tensor | np.ndarray], arch_id: str) -> bytes:
    spec = model_spec(arch_id)
    arrays = {}
    for p in spec.params:
        value = params[p.name]
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        arrays[p.name] = np.ascontiguousarray(array, dtype=np.float32)
    return encode_tensors(arrays, make_metadata(arch_id, extra={"chainml.kind": WEIGHTS_KIND}))


def weights_spec(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    return {p.name: (p.shape, p.dtype) for p in spec.params}


def decode_weights(data: bytes, arch_id: str) -> Params:
    """Weights for ``arch_id``; wrong architecture, shapes, dtypes or NaN raise IntegrityError."""
    spec = model_spec(arch_id)
    tensors, metadata = decode_tensors(data, weights_spec(spec), max_bytes=MAX_WEIGHTS_BYTES)
    header = read_metadata(metadata)
    if header.arch != arch_id or header.extra.get("chainml.kind") != WEIGHTS_KIND:
        raise IntegrityError(
            f"payload holds {header.extra.get('chainml.kind')} for {header.arch}, "
            f"expected {WEIGHTS_KIND} for {arch_id}"
        )
    return {p.name: torch.from_numpy(tensors[p.name]) for p in spec.params}


def weights_arch(data: bytes) -> str:
    """The architecture id a weights payload declares (before full validation)."""
    _, metadata = decode_tensors(data, max_bytes=MAX_WEIGHTS_BYTES)
    return read_metadata(metadata).arch


# -- sparse updates --------------------------------------------------------------------------


def encode_update(update: SparseUpdate) -> bytes:
    arrays, meta = update.to_arrays("bitmask")
    extra = {"chainml.kind": UPDATE_KIND, "chainml.sparse": json.dumps(meta, sort_keys=True)}
    return encode_tensors(arrays, make_metadata(update.arch_id, extra=extra))


def decode_update(data: bytes, arch_id: str) -> SparseUpdate:
    """A node's update for ``arch_id``; anything malformed raises IntegrityError."""
    spec = model_spec(arch_id)
    n_scales = len(spec.body)
    expected = {
        "mask": (((spec.body_size + 7) // 8,), "uint8"),
        "values": ((None,), "int8"),
        "scales": ((None,), "float32"),
    }
    tensors, metadata = decode_tensors(data, expected, max_bytes=MAX_UPDATE_BYTES)
    header = read_metadata(metadata)
    if header.arch != arch_id or header.extra.get("chainml.kind") != UPDATE_KIND:
        raise IntegrityError(f"payload is not a sparse update for {arch_id}")
    try:
        meta = json.loads(header.extra["chainml.sparse"])
        update = SparseUpdate.from_arrays(tensors, meta)
    except (KeyError, ValueError, MetaLearningError) as exc:
        raise IntegrityError(f"malformed sparse update: {exc}") from exc
    if update.arch_id != arch_id or update.scales.shape[0] not in (1, n_scales):
        raise IntegrityError(f"sparse update does not match architecture {arch_id}")
    return update


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
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
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
    return [str(n) for n in raw["nodes"]]
