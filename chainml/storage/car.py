"""CAR v1 files, the format ``ipfs dag export`` writes and ``ipfs dag import`` reads.

Layout: ``varint(len) + dag-cbor {"roots": [CID...], "version": 1}``, then for every block
``varint(len(cid) + len(data)) + cid + data``. The header needs only a few CBOR types, so a
minimal encoder/decoder lives here instead of a CBOR dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from chainml.errors import IntegrityError, StorageError
from chainml.storage.limits import check_object_size
from chainml.storage.protobuf import read_varint, varint

MAX_HEADER_SIZE = 1 << 20
MAX_HEADER_DEPTH = 8
"""A CAR v1 header is a map holding a list of links: two levels. Deeper nesting is refused
before it can exhaust the stack (a 1.2 kB header of nested arrays used to raise RecursionError)."""
MAX_HEADER_ITEMS = 1 << 16
"""No header needs more entries than this; a claimed count above it is refused at once."""
CID_TAG = 42


def encode_header(roots: list[bytes]) -> bytes:
    """The dag-cbor header; keys in dag-cbor order (shorter first): roots, version."""
    body = bytearray(b"\xa2\x65roots")
    body += _cbor_head(4, len(roots))
    for root in roots:
        body += b"\xd8\x2a" + _cbor_head(2, len(root) + 1) + b"\x00" + root
    body += b"\x67version\x01"
    return varint(len(body)) + bytes(body)


def write_car(out: BinaryIO, roots: list[bytes], blocks: Iterable[tuple[bytes, bytes]]) -> int:
    """Write a CAR v1 stream; returns the number of blocks written."""
    out.write(encode_header(roots))
    count = 0
    for cid, data in blocks:
        out.write(varint(len(cid) + len(data)))
        out.write(cid)
        out.write(data)
        count += 1
    return count


def read_car(source: BinaryIO, max_bytes: int) -> tuple[list[bytes], Iterator[tuple[bytes, bytes]]]:
    """The header's roots and a lazy iterator of ``(cid, data)``; blocks are not verified here.

    ``max_bytes`` bounds the total block payload, so a hostile CAR cannot fill the disk.
    """
    size = _read_stream_varint(source, allow_eof=False)
    if size is None or size > MAX_HEADER_SIZE:
        raise IntegrityError(f"CAR header length {size} is not plausible: not a CAR v1 file?")
    header = _read_exact(source, size, "CAR header")
    try:
        value, end = _cbor_decode(header, 0, 0)
    except (IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"CAR header is not valid CBOR: {exc}") from exc
    if end != len(header) or not isinstance(value, dict):
        raise IntegrityError("CAR header is not a single CBOR map")
    if value.get("version") != 1:
        raise StorageError(
            f"CAR version {value.get('version')!r} is not supported: export a CAR v1 "
            "(`ipfs dag export` writes v1)"
        )
    roots = value.get("roots")
    if not isinstance(roots, list) or not roots or not all(isinstance(r, _Link) for r in roots):
        raise IntegrityError("CAR header has no valid roots list")
    for root in roots:
        if _cid_length(root, "CAR root") != len(root):
            raise IntegrityError("CAR header has a root with bytes after its CID")
    return [bytes(r) for r in roots], _iter_blocks(source, max_bytes)


def _iter_blocks(source: BinaryIO, max_bytes: int) -> Iterator[tuple[bytes, bytes]]:
    total = 0
    while True:
        size = _read_stream_varint(source, allow_eof=True)
        if size is None:
            return
        total += size
        check_object_size(total, max_bytes, "CAR content")
        section = _read_exact(source, size, "CAR block")
        cid_len = _cid_length(section)
        yield section[:cid_len], section[cid_len:]


def _cid_length(section: bytes, what: str = "CAR block") -> int:
    """Length of the CID that starts a block section (v0: 34 bytes; v1: parsed)."""
    if section[:2] == b"\x12\x20":
        if len(section) < 34:
            raise IntegrityError(f"{what} is shorter than its CID")
        return 34
    pos = 0
    version, pos = read_varint(section, pos)
    if version != 1:
        raise IntegrityError(f"{what} has an unsupported CID version {version}")
    _, pos = read_varint(section, pos)  # codec
    _, pos = read_varint(section, pos)  # multihash function
    length, pos = read_varint(section, pos)
    if pos + length > len(section):
        raise IntegrityError(f"{what} is shorter than its CID")
    return pos + length


def _read_exact(source: BinaryIO, size: int, what: str) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise IntegrityError(f"{what} is truncated ({len(data)} of {size} bytes)")
    return data


def _read_stream_varint(source: BinaryIO, *, allow_eof: bool) -> int | None:
    value = shift = 0
    first = True
    while True:
        byte = source.read(1)
        if not byte:
            if first and allow_eof:
                return None
            raise IntegrityError("CAR file is truncated inside a length prefix")
        first = False
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise IntegrityError("CAR length prefix is longer than 64 bits")


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes((major << 5 | value,))
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes((major << 5 | extra,)) + value.to_bytes(width, "big")
    raise ValueError("CBOR value too large")


class _Link(bytes):
    """A CID decoded from CBOR tag 42 (binary CID without the multibase 0x00 prefix)."""


def _cbor_decode(buf: bytes, pos: int, depth: int) -> tuple[object, int]:
    """One CBOR item at ``pos`` and the position after it; nesting is bounded by ``depth``."""
    if depth > MAX_HEADER_DEPTH:
        raise ValueError(f"nested deeper than {MAX_HEADER_DEPTH} levels")
    initial = buf[pos]
    pos += 1
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        arg = info
    elif info <= 27:
        width = 1 << (info - 24)
        if pos + width > len(buf):
            raise ValueError("truncated CBOR head")
        arg = int.from_bytes(buf[pos : pos + width], "big")
        pos += width
    else:
        raise ValueError(f"unsupported CBOR additional info {info}")
    if major in (4, 5) and arg > MAX_HEADER_ITEMS:
        raise ValueError(f"a CBOR {'array' if major == 4 else 'map'} of {arg} items")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        chunk = buf[pos : pos + arg]
        if len(chunk) != arg:
            raise ValueError("truncated CBOR string")
        return (bytes(chunk) if major == 2 else chunk.decode("utf-8")), pos + arg
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _cbor_decode(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping = {}
        for _ in range(arg):
            key, pos = _cbor_decode(buf, pos, depth + 1)
            if not isinstance(key, str):
                raise ValueError("a map key that is not a text string")
            mapping[key], pos = _cbor_decode(buf, pos, depth + 1)
        return mapping, pos
    if major == 6:
        item, pos = _cbor_decode(buf, pos, depth + 1)
        if arg == CID_TAG and isinstance(item, bytes) and item[:1] == b"\x00":
            return _Link(item[1:]), pos
        return item, pos
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info in simple:
            return simple[info], pos
    raise ValueError(f"unsupported CBOR item 0x{initial:02x}")
