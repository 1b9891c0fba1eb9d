"""The few protobuf wire-format primitives dag-pb and UnixFS need (no protobuf dependency)."""

from __future__ import annotations

from collections.abc import Iterator

from chainml.errors import IntegrityError

VARINT = 0
LEN = 2


def varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf, multiformats and CAR use it."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; returns ``(value, next_pos)``."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise IntegrityError("truncated varint in protobuf/CAR data")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise IntegrityError("varint longer than 64 bits in protobuf/CAR data")


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | LEN) + varint(len(value)) + value


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field_number, wire_type, value)``; ``value`` is an int or the raw bytes."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
            yield number, wire, value
        elif wire == LEN:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise IntegrityError("truncated length-delimited protobuf field")
            yield number, wire, bytes(buf[pos : pos + size])
            pos += size
        else:
            raise IntegrityError(f"unsupported protobuf wire type {wire} in a dag-pb node")
