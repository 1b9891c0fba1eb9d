"""CIDs as chainml uses them: CIDv1, sha2-256, codec raw or dag-pb, shown in base32.

Everything on the hot path works on the binary CID (``bytes``) because building a
``multiformats.CID`` costs ~100 µs; the public API still speaks ``multiformats.CID``.
The on-chain form agreed with the contracts is ``(bytes32 digest, uint64 codec)`` with
version 1 and sha2-256 implied, so the full CID is always recoverable from chain state.
"""

from __future__ import annotations

import base64
import hashlib

from multiformats import CID, multibase, multicodec, multihash

from chainml.errors import IntegrityError, StorageError

RAW = 0x55
"""Multicodec of a raw block: the bytes are the content."""
DAG_PB = 0x70
"""Multicodec of a dag-pb node (a UnixFS file root or interior node)."""
SHA2_256 = 0x12
DIGEST_SIZE = 32
CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}

CIDLike = CID | str | bytes
"""Anything the storage API accepts as a CID: a ``CID``, its string or its binary form."""


class InvalidCIDError(StorageError):
    """A CID that chainml cannot use: malformed, not v1, not sha2-256 or not raw/dag-pb."""


def make_cid_bytes(codec: int, digest: bytes) -> bytes:
    """The binary CIDv1 for a sha2-256 digest (codecs 0x55/0x70 are one-byte varints)."""
    return bytes((1, codec, SHA2_256, DIGEST_SIZE)) + digest


def raw_cid_bytes(data: bytes | memoryview) -> bytes:
    """The binary CID of ``data`` stored as a single raw block."""
    return make_cid_bytes(RAW, hashlib.sha256(data).digest())


def split_cid_bytes(cid: bytes) -> tuple[int, bytes]:
    """``(codec, digest)`` of a binary CID; accepts CIDv0 (dag-pb implied) for imported DAGs."""
    if len(cid) == 34 and cid[0] == SHA2_256 and cid[1] == DIGEST_SIZE:
        return DAG_PB, cid[2:]
    if len(cid) == 36 and cid[0] == 1 and cid[1] in CODEC_NAMES and cid[2:4] == b"\x12\x20":
        return cid[1], cid[4:]
    raise InvalidCIDError(
        f"unsupported CID {_describe(cid)}: chainml stores only sha2-256 blocks "
        "with codec raw or dag-pb"
    )


def canonical_bytes(cid: bytes) -> bytes:
    """The CIDv1 form of a binary CID (CIDv0 becomes the equivalent v1 dag-pb CID)."""
    codec, digest = split_cid_bytes(cid)
    return make_cid_bytes(codec, digest)


def cid_str(cid: CIDLike) -> str:
    """Canonical display form: base32 (``bafk...`` for raw, ``bafy...`` for dag-pb)."""
    raw = to_cid_bytes(cid)
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def to_cid_bytes(value: CIDLike) -> bytes:
    """Parse and validate a CID (v1, sha2-256, raw or dag-pb) into its binary form."""
    if isinstance(value, CID | bytes | bytearray | memoryview):
        raw = bytes(value)
    elif isinstance(value, str):
        raw = _decode_str(value.strip())
    else:
        raise InvalidCIDError(f"expected a CID, got {type(value).__name__}")
    if raw[:1] != b"\x01":
        raise InvalidCIDError(
            f"CID {_describe(raw)} is not version 1: chainml uses CIDv1 only "
            "(convert with `ipfs cid format -v 1 -b base32`)"
        )
    split_cid_bytes(raw)
    return raw


def to_cid(value: CIDLike) -> CID:
    """A validated ``multiformats.CID`` in base32 (see ``to_cid_bytes`` for the rules)."""
    return cid_from_bytes(to_cid_bytes(value))


def cid_from_bytes(raw: bytes) -> CID:
    """Wrap a binary CIDv1 as a base32 ``multiformats.CID``.

    The public ``CID(...)`` constructor re-validates its arguments with runtime type checks
    (~100 µs); the parts are already validated here, so the cached multiformats objects go
    straight to ``CID._new_instance`` (~6 µs), falling back to the public constructor should
    that private hook ever disappear. A test pins both paths to equal results.
    """
    codec, digest = split_cid_bytes(raw)
    multihash_bytes = b"\x12\x20" + digest
    if _FAST_PARTS is not None:
        base, codecs, hashfun = _FAST_PARTS
        return CID._new_instance(CID, base, 1, codecs[codec], hashfun, multihash_bytes)
    return CID("base32", 1, CODEC_NAMES[codec], multihash_bytes)


def _fast_parts() -> tuple[object, dict[int, object], object] | None:
    if not hasattr(CID, "_new_instance"):
        return None
    return (
        multibase.get("base32"),
        {code: multicodec.get(name) for code, name in CODEC_NAMES.items()},
        multihash.get("sha2-256"),
    )


_FAST_PARTS = _fast_parts()


def cid_to_onchain(cid: CIDLike) -> tuple[bytes, int]:
    """The contracts' form ``(bytes32 digest, uint64 codec)`` of a CID."""
    codec, digest = split_cid_bytes(to_cid_bytes(cid))
    return digest, codec


def cid_from_onchain(digest: bytes | str, codec: int) -> CID:
    """Rebuild the full CID from ``(bytes32 digest, uint64 codec)`` read from chain."""
    return cid_from_bytes(_onchain_bytes(digest, codec))


def _onchain_bytes(digest: bytes | str, codec: int) -> bytes:
    """The binary CIDv1 of an on-chain ``(digest, codec)`` pair, validated."""
    if isinstance(digest, str):
        text = digest.removeprefix("0x")
        try:
            digest = bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidCIDError(f"on-chain digest {digest!r} is not hex") from exc
    digest = bytes(digest)
    if len(digest) != DIGEST_SIZE:
        raise InvalidCIDError(
            f"on-chain digest must be 32 bytes (sha2-256), got {len(digest)} bytes"
        )
    if codec not in CODEC_NAMES:
        raise InvalidCIDError(f"on-chain codec {codec:#x} is not raw (0x55) or dag-pb (0x70)")
    return make_cid_bytes(codec, digest)


def onchain_to_str(digest: bytes | str, codec: int) -> str:
    """The base32 CID string for an on-chain ``(digest, codec)`` pair (straight from the
    binary CID: no ``multiformats.CID`` object, which cost ~0.1 ms a call)."""
    return cid_str(_onchain_bytes(digest, codec))


def str_to_onchain(text: str) -> tuple[bytes, int]:
    """The on-chain ``(digest, codec)`` pair for a CID string."""
    return cid_to_onchain(text)


def verify_block(cid: bytes, block: bytes | memoryview) -> None:
    """Raise ``IntegrityError`` naming the CID unless ``block`` hashes to it."""
    _, digest = split_cid_bytes(cid)
    if hashlib.sha256(block).digest() != digest:
        raise IntegrityError(
            f"block {cid_str(canonical_bytes(cid))} is corrupt: its content does not match "
            "its CID (re-fetch it or re-import it from a trusted copy)"
        )


def _decode_str(text: str) -> bytes:
    """Binary CID from text; base32 is decoded directly because it is by far the most common."""
    if text.startswith("b") and text[1:].isalnum():
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:
            raw = b""
        if len(raw) == 36:
            return raw
    try:
        return bytes(CID.decode(text))
    except Exception as exc:  # multiformats raises several unrelated types
        raise InvalidCIDError(f"{text!r} is not a valid CID: {exc}") from exc


def _describe(raw: bytes) -> str:
    try:
        return str(CID.decode(raw))
    except Exception:
        return f"0x{raw.hex()}"
