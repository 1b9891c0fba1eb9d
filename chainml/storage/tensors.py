"""Meta-weights and updates as safetensors: no pickle, deterministic bytes, validated reads.

The safetensors library writes its ``__metadata__`` map in a per-process random order, so the
same tensors would get a different CID in every process. ``encode_tensors`` therefore
re-emits the JSON header canonically (metadata keys sorted, tensors in data order, no
whitespace, space-padded to 8 bytes as the format requires); the tensor data is untouched.

Metadata values are strings (a safetensors rule). chainml's keys:

* ``chainml.format``: codec version, ``"1"``.
* ``chainml.arch``: model architecture id, e.g. ``"sine-mlp-40x40"``.
* ``chainml.quant``: JSON ``{tensor name: scale}`` for quantized tensors.
* ``chainml.top_p``: JSON float, the fraction of coordinates a sparse update keeps.

A sparse (top-P) update of tensor ``w`` is two tensors: ``w.indices`` (int32, flat indices
into ``w``) and ``w.values``; see ``sparse_names``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

from chainml.errors import IntegrityError
from chainml.storage.limits import check_object_size, default_max_object_size

FORMAT_VERSION = "1"
KEY_FORMAT = "chainml.format"
KEY_ARCH = "chainml.arch"
KEY_QUANT = "chainml.quant"
KEY_TOP_P = "chainml.top_p"
INDICES_SUFFIX = ".indices"
VALUES_SUFFIX = ".values"
MAX_HEADER_SIZE = 16 * 1024 * 1024

SUPPORTED_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.float64,
        np.float32,
        np.float16,
        np.int64,
        np.uint64,
        np.int32,
        np.uint32,
        np.int16,
        np.uint16,
        np.int8,
        np.uint8,
        np.bool_,
    )
)

Shape = tuple[int | None, ...]
TensorSpec = Mapping[str, tuple[Shape, str | np.dtype]]
"""Expected tensors: ``{name: (shape, dtype)}``; ``None`` in a shape matches any length."""


@dataclass(frozen=True)
class Header:
    """chainml's structured view of a payload's metadata."""

    arch: str
    quant_scales: dict[str, float] = field(default_factory=dict)
    top_p: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def sparse_names(name: str) -> tuple[str, str]:
    """Tensor names holding a sparse update of ``name``: (int32 flat indices, values)."""
    return name + INDICES_SUFFIX, name + VALUES_SUFFIX


def make_metadata(
    arch: str,
    *,
    quant_scales: Mapping[str, float] | None = None,
    top_p: float | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The string metadata for ``encode_tensors`` under chainml's documented keys."""
    meta = dict(extra or {})
    meta[KEY_FORMAT] = FORMAT_VERSION
    meta[KEY_ARCH] = arch
    if quant_scales:
        bad = sorted(k for k, v in quant_scales.items() if not math.isfinite(float(v)))
        if bad:
            raise IntegrityError(f"quantization scale of tensor {bad[0]!r} is not finite")
        scales = {k: float(v) for k, v in sorted(quant_scales.items())}
        meta[KEY_QUANT] = json.dumps(scales, separators=(",", ":"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise IntegrityError(f"top_p must be in (0, 1], got {top_p}")
        meta[KEY_TOP_P] = json.dumps(float(top_p))
    return meta


def read_metadata(metadata: Mapping[str, str]) -> Header:
    """Parse chainml's keys back; ``IntegrityError`` if they are missing or malformed."""
    if metadata.get(KEY_FORMAT) != FORMAT_VERSION:
        raise IntegrityError(
            f"payload format {metadata.get(KEY_FORMAT)!r} is not chainml format {FORMAT_VERSION}"
        )
    arch = metadata.get(KEY_ARCH)
    if not arch:
        raise IntegrityError(f"payload metadata has no {KEY_ARCH}")
    try:
        quant = json.loads(metadata.get(KEY_QUANT, "{}"))
        top_p = json.loads(metadata[KEY_TOP_P]) if KEY_TOP_P in metadata else None
        scales = {str(k): float(v) for k, v in quant.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"payload metadata is malformed: {exc}") from exc
    extra = {
        k: v for k, v in metadata.items() if k not in (KEY_FORMAT, KEY_ARCH, KEY_QUANT, KEY_TOP_P)
    }
    return Header(arch, scales, None if top_p is None else float(top_p), extra)


def encode_tensors(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Deterministic safetensors bytes: the same tensors and metadata give the same CID."""
    checked: dict[str, np.ndarray] = {}
    for name in sorted(tensors):
        array = tensors[name]
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise IntegrityError(f"invalid tensor name {name!r}")
        if not isinstance(array, np.ndarray):
            raise IntegrityError(f"tensor {name!r} is a {type(array).__name__}, not a numpy array")
        _check_dtype(name, array.dtype)
        _check_finite(name, array)
        checked[name] = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    meta = {}
    for key, value in sorted((metadata or {}).items()):
        if not isinstance(key, str) or not isinstance(value, str):
            raise IntegrityError(f"metadata must map str to str, got {key!r}: {value!r}")
        meta[key] = value
    try:
        raw = _st_save(checked, metadata=meta or None)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise IntegrityError(f"cannot encode tensors as safetensors: {exc}") from exc
    return _canonical(raw)


def decode_tensors(
    data: bytes,
    spec: TensorSpec | None = None,
    max_bytes: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse and validate a safetensors payload: ``(tensors, metadata)``.

    Raises ``IntegrityError`` naming the tensor for a malformed payload, a dtype outside the
    supported set, NaN or Inf in a float tensor, or (with ``spec``) a missing, extra,
    wrong-shape or wrong-dtype tensor. The arrays are writable copies.
    """
    check_object_size(
        len(data), default_max_object_size() if max_bytes is None else max_bytes, "tensor payload"
    )
    metadata = _read_header_metadata(data)
    try:
        loaded = _st_load(bytes(data))
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:
        raise IntegrityError(f"payload is not valid safetensors: {exc}") from exc
    tensors = {}
    for name in sorted(loaded):
        array = np.array(loaded[name])
        _check_dtype(name, array.dtype)
        _check_finite(name, array)
        tensors[name] = array
    if spec is not None:
        check_spec(tensors, spec)
    return tensors, metadata


def check_spec(tensors: Mapping[str, np.ndarray], spec: TensorSpec) -> None:
    """``IntegrityError`` naming the first tensor that is missing, extra or mis-shaped."""
    missing = sorted(set(spec) - set(tensors))
    if missing:
        raise IntegrityError(f"tensor {missing[0]!r} is missing (model spec expects it)")
    extra = sorted(set(tensors) - set(spec))
    if extra:
        raise IntegrityError(f"tensor {extra[0]!r} is not in the model spec")
    for name in sorted(spec):
        shape, dtype = spec[name]
        array = tensors[name]
        if array.dtype != np.dtype(dtype):
            raise IntegrityError(
                f"tensor {name!r} has dtype {array.dtype}, model spec expects {np.dtype(dtype)}"
            )
        if len(array.shape) != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, array.shape, strict=True)
        ):
            raise IntegrityError(
                f"tensor {name!r} has shape {tuple(array.shape)}, model spec expects {tuple(shape)}"
            )


def _check_dtype(name: str, dtype: np.dtype) -> None:
    if dtype.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise IntegrityError(f"tensor {name!r} has unsupported dtype {dtype}")


def _check_finite(name: str, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        bad = "NaN" if np.isnan(array).any() else "Inf"
        raise IntegrityError(f"tensor {name!r} contains {bad} values; refusing it")


def _split(data: bytes) -> tuple[int, bytes]:
    if len(data) < 8:
        raise IntegrityError(f"payload is not valid safetensors: only {len(data)} bytes")
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER_SIZE or 8 + size > len(data):
        raise IntegrityError(f"payload is not valid safetensors: header length {size} is invalid")
    return size, data[8 : 8 + size]


def _read_header_metadata(data: bytes) -> dict[str, str]:
    _, header = _split(data)
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(
            f"payload is not valid safetensors: header is not JSON ({exc})"
        ) from exc
    except RecursionError:
        raise IntegrityError("payload is not valid safetensors: header nested too deeply") from None
    if not isinstance(parsed, dict):
        raise IntegrityError("payload is not valid safetensors: header is not a JSON object")
    meta = parsed.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise IntegrityError("payload metadata must map strings to strings")
    return dict(sorted(meta.items()))


def _canonical(raw: bytes) -> bytes:
    """Rewrite the JSON header of ``raw`` canonically (see the module docstring)."""
    size, header = _split(raw)
    parsed = json.loads(header)
    meta = parsed.pop("__metadata__", None)
    canonical: dict[str, object] = {}
    if meta:
        canonical["__metadata__"] = dict(sorted(meta.items()))
    for name in sorted(parsed, key=lambda n: (parsed[n]["data_offsets"], n)):
        info = parsed[name]
        canonical[name] = {
            "dtype": info["dtype"],
            "shape": info["shape"],
            "data_offsets": info["data_offsets"],
        }
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + size :]
