"""Hot-path conversions between binary CIDs and ``multiformats.CID`` for the embedded store.

``cid.cid_from_bytes`` goes through ``CID._new_instance``, whose interning cache hashes the
multiformats objects in Python (~7 µs, as long as hashing a 10 KB object), and
``bytes(CID)`` re-encodes varints (~2 µs). Here a CID is filled in slot by slot (~0.5 µs)
and read back from its slots. Both shortcuts check themselves against the public code paths
at import and fall back to them if multiformats ever changes; a test pins them to be equal.
"""

from __future__ import annotations

from collections.abc import Callable

from multiformats import CID, multibase, multicodec, multihash

from chainml.storage.cid import (
    CODEC_NAMES,
    DAG_PB,
    RAW,
    CIDLike,
    cid_from_bytes,
    cid_str,
    make_cid_bytes,
    to_cid_bytes,
)

_MH_PREFIX = b"\x12\x20"


def _slot_factory() -> Callable[[bytes], CID] | None:
    try:
        base = multibase.get("base32")
        codecs = {code: multicodec.get(name) for code, name in CODEC_NAMES.items()}
        hashfun = multihash.get("sha2-256")
        new = object.__new__

        def build(raw: bytes) -> CID:
            # ``raw`` is a validated 36-byte CIDv1: 0x01, codec, 0x12 0x20, digest
            instance = new(CID)
            instance._base = base
            instance._version = 1
            instance._codec = codecs[raw[1]]
            instance._hashfun = hashfun
            instance._digest = raw[2:]
            return instance

        for codec in (RAW, DAG_PB):
            raw = make_cid_bytes(codec, bytes(range(32)))
            fast, slow = build(raw), cid_from_bytes(raw)
            if not (fast == slow and str(fast) == str(slow) == cid_str(raw)):
                return None
            if bytes(fast) != raw or hash(fast) != hash(slow):
                return None
        return build
    except Exception:  # any change in multiformats internals: use the public path
        return None


def _slot_reader() -> Callable[[CID], bytes | None] | None:
    try:

        def read(value: CID) -> bytes | None:
            codec = value._codec.code
            digest = value._digest
            if value._version != 1 or codec not in CODEC_NAMES or len(digest) != 34:
                return None
            if digest[:2] != _MH_PREFIX:
                return None
            return bytes((1, codec)) + digest

        for codec in (RAW, DAG_PB):
            raw = make_cid_bytes(codec, bytes(range(32)))
            if read(cid_from_bytes(raw)) != raw or read(CID.decode(cid_str(raw))) != raw:
                return None
        return read
    except Exception:
        return None


_BUILD = _slot_factory()
_READ = _slot_reader()


def cid_object(raw: bytes) -> CID:
    """``cid.cid_from_bytes`` for a validated binary CIDv1, without the interning cache."""
    if _BUILD is not None and len(raw) == 36:
        return _BUILD(raw)
    return cid_from_bytes(raw)


def cid_binary(value: CIDLike) -> bytes:
    """``cid.to_cid_bytes`` (same validation and errors), faster for ``CID`` objects."""
    if _READ is not None and type(value) is CID:
        raw = _READ(value)
        if raw is not None:
            return raw
    return to_cid_bytes(value)


cid_object_v1: Callable[[bytes], CID] = _BUILD or cid_from_bytes
"""``cid_object`` for callers that built the 36-byte CIDv1 themselves (no length check)."""
