"""The bytes the swarm puts on IPFS, and how they are read back and checked.

- **Version:** safetensors of every parameter (float32, keys = the model spec's names) plus the
  server optimizer's moments; the recipe and the optimizer's counters are in its metadata, so
  one CID names everything the next aggregate depends on.
- **Update:** the compact binary form of a ``SparseUpdate``
  (:func:`chainml.meta.sparse.encode_sparse`).
- **Batch leaves, node lists:** canonical JSON, in :mod:`chainml.protocol.codecs` (which needs
  no torch, so ``inspect``, the gateway and the challenger load without it); they are
  re-exported here. The metrics file is in :mod:`chainml.protocol.round_metrics`.

Every decoder validates against the model spec (shapes, dtypes, NaN/Inf), never unpickles, and
raises ``IntegrityError`` naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from chainml.errors import ChainMLError, IntegrityError, MetaLearningError
from chainml.meta.federated import ServerState
from chainml.meta.models import ModelSpec, Params, model_spec
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import SparseUpdate, decode_sparse, encode_sparse
from chainml.protocol.codecs import (  # noqa: F401  (re-exported: one import for all payloads)
    LEAVES_FORMAT,
    NODE_LIST_FORMAT,
    canonical_json,
    decode_leaves,
    decode_node_list,
    encode_leaves,
    encode_node_list,
    parse_json,
)
from chainml.storage.tensors import decode_tensors, encode_tensors, make_metadata, read_metadata

WEIGHTS_KIND = "weights"
UPDATE_KIND = "sparse-update"
MAX_UPDATE_BYTES = 4 * 1024 * 1024
MAX_WEIGHTS_BYTES = 64 * 1024 * 1024


# -- versions (weights + server state + recipe) ------------------------------------------

KEY_RECIPE = "chainml.recipe"
KEY_SERVER = "chainml.server"
STATE_M = "server.adam_m"
STATE_V = "server.adam_v"


@dataclass(frozen=True)
class VersionFile:
    """A version as stored: the meta-weights, the server optimizer state that produced them,
    and the recipe every version of this lineage follows."""

    arch_id: str
    params: Params
    state: ServerState
    recipe: Recipe


def encode_weights(
    params: Mapping[str, torch.Tensor | np.ndarray],
    arch_id: str,
    *,
    recipe: Recipe | None = None,
    state: ServerState | None = None,
) -> bytes:
    """A version file; a genesis (``state=None``) starts the server optimizer at zero."""
    spec = model_spec(arch_id)
    state = state or ServerState.zeros(spec.num_params)
    state.validate(spec.num_params)
    arrays = {}
    for p in spec.params:
        value = params[p.name]
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        arrays[p.name] = np.ascontiguousarray(array, dtype=np.float32)
    arrays[STATE_M], arrays[STATE_V] = state.m, state.v
    server = {
        "b1_power": state.b1_power.hex(),
        "b2_power": state.b2_power.hex(),
        "step": state.step,
    }
    extra = {
        "chainml.kind": WEIGHTS_KIND,
        KEY_RECIPE: (recipe or Recipe()).canonical().decode(),
        KEY_SERVER: canonical_json(server).decode(),
    }
    return encode_tensors(arrays, make_metadata(arch_id, extra=extra))


def weights_spec(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {p.name: (p.shape, p.dtype) for p in spec.params}
    out[STATE_M] = out[STATE_V] = ((spec.num_params,), "float32")
    return out


def decode_version(data: bytes, arch_id: str | None = None) -> VersionFile:
    """A version file, fully validated; a wrong architecture, shapes, dtypes, NaN, a bad recipe
    or server state raise IntegrityError."""
    arch_id = arch_id or weights_arch(data)
    spec = model_spec(arch_id)
    tensors, metadata = decode_tensors(data, weights_spec(spec), max_bytes=MAX_WEIGHTS_BYTES)
    header = read_metadata(metadata)
    if header.arch != arch_id or header.extra.get("chainml.kind") != WEIGHTS_KIND:
        raise IntegrityError(
            f"payload holds {header.extra.get('chainml.kind')} for {header.arch}, "
            f"expected {WEIGHTS_KIND} for {arch_id}"
        )
    try:
        recipe = Recipe.parse(header.extra[KEY_RECIPE])
        server = json.loads(header.extra[KEY_SERVER])
        state = ServerState(
            tensors[STATE_M],
            tensors[STATE_V],
            float.fromhex(server["b1_power"]),
            float.fromhex(server["b2_power"]),
            server["step"],
        )
        if not isinstance(state.step, int) or isinstance(state.step, bool):
            raise ValueError(f"step {state.step!r} is not an integer")
        state.validate(spec.num_params)
    except (
        KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError,
        ChainMLError,
    ) as exc:  # fmt: skip
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise IntegrityError(
            f"version file has a malformed recipe or server state: {what}"
        ) from None
    params = {p.name: torch.from_numpy(tensors[p.name]) for p in spec.params}
    return VersionFile(arch_id, params, state, recipe)


def decode_weights(data: bytes, arch_id: str) -> Params:
    """Only the meta-weights of a version file (see :func:`decode_version`)."""
    return decode_version(data, arch_id).params


def version_recipe(data: bytes) -> Recipe:
    return decode_version(data).recipe


def weights_arch(data: bytes) -> str:
    """The architecture id a weights payload declares (before full validation)."""
    _, metadata = decode_tensors(data, max_bytes=MAX_WEIGHTS_BYTES)
    return read_metadata(metadata).arch


# -- sparse updates --------------------------------------------------------------------------


def encode_update(update: SparseUpdate) -> bytes:
    return encode_sparse(update)


def decode_update(data: bytes, arch_id: str) -> SparseUpdate:
    """A node's update for ``arch_id``; anything malformed raises IntegrityError."""
    if len(data) > MAX_UPDATE_BYTES:
        raise IntegrityError(f"update of {len(data)} bytes exceeds {MAX_UPDATE_BYTES}")
    try:
        return decode_sparse(data, arch_id)
    except MetaLearningError as exc:
        raise IntegrityError(str(exc)) from exc
