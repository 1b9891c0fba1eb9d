"""Content-addressed storage for model weights and updates: IPFS CIDs, two backends, tensors.

* ``cid``: CIDv1 helpers and the on-chain form ``(bytes32 digest, uint64 codec)``.
* ``unixfs`` / ``car``: Kubo-identical file DAGs and CAR v1 files.
* ``embedded`` (default, no daemon) and ``kubo`` (Kubo HTTP RPC): the two ``Store`` backends,
  chosen with ``open_store("embedded" | "http://host:port" | "/ip4/.../tcp/...", data_dir)``.
* ``tensors``: deterministic, validated safetensors payloads.
"""

from chainml.storage.cid import (
    DAG_PB,
    RAW,
    CIDLike,
    InvalidCIDError,
    cid_from_onchain,
    cid_str,
    cid_to_onchain,
    onchain_to_str,
    str_to_onchain,
    to_cid,
)
from chainml.storage.limits import DEFAULT_MAX_OBJECT_SIZE, ObjectTooLargeError
from chainml.storage.store import Store, open_store
from chainml.storage.tensors import (
    decode_tensors,
    encode_tensors,
    make_metadata,
    read_metadata,
    sparse_names,
)

__all__ = [
    "DAG_PB",
    "DEFAULT_MAX_OBJECT_SIZE",
    "RAW",
    "CIDLike",
    "InvalidCIDError",
    "ObjectTooLargeError",
    "Store",
    "cid_from_onchain",
    "cid_str",
    "cid_to_onchain",
    "decode_tensors",
    "encode_tensors",
    "make_metadata",
    "onchain_to_str",
    "open_store",
    "read_metadata",
    "sparse_names",
    "str_to_onchain",
    "to_cid",
]
