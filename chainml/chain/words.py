"""ABI decoding of static values (fixed-size words) and registry event topics, for bulk reads.

``eth_abi.decode`` costs about 0.35 ms for a ``nodeInfo`` struct, and web3's event decoding
about 3 ms per log; a fleet of 10,000 nodes reads both every round. Static types are one
32-byte word each (a static tuple is its members' words in order), so decoding them is slicing
plus the same padding checks eth-abi makes. Supported: ``bool``, ``address``, ``uintN``,
``intN``, ``bytesN`` and tuples of these; a value eth-abi would refuse raises ``ValueError``.
Addresses come back in lower case, as eth-abi returns them
(``topic_address`` checksums, as web3's event decoding does). Tests pin the results to eth-abi's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from chainml.chain.eip712 import checksum_address

WORD = 32
Decoder = Callable[[bytes, int], tuple[Any, int]]
_INT = re.compile(r"(u?)int(\d+)")
_BYTES = re.compile(r"bytes(\d+)")


def decode_static(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """``eth_abi.decode(types, data)`` for static types."""
    decoder = _tuple_decoder(tuple(types))
    if len(data) < WORD * _words(tuple(types)):
        raise ValueError(f"{len(data)} bytes are too short for ({', '.join(types)})")
    value, _ = decoder(data, 0)
    return value


def _split(inner: str) -> tuple[str, ...]:
    """Top-level comma-separated members of a tuple type's inside."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return tuple(p.strip() for p in parts if p.strip())


@cache
def _words(types: tuple[str, ...]) -> int:
    return sum(_words(_split(t[1:-1])) if t.startswith("(") else 1 for t in types)


@cache
def _tuple_decoder(types: tuple[str, ...]) -> Decoder:
    members = [_decoder(t) for t in types]

    def decode(data: bytes, at: int) -> tuple[Any, int]:
        out = []
        for member in members:
            value, at = member(data, at)
            out.append(value)
        return tuple(out), at

    return decode


@cache
def _decoder(type_str: str) -> Decoder:
    if type_str.startswith("(") and type_str.endswith(")"):
        return _tuple_decoder(_split(type_str[1:-1]))
    if type_str == "bool":
        return _word(_bool)
    if type_str == "address":
        return _word(_address)
    if (m := _INT.fullmatch(type_str)) and 8 <= int(m[2]) <= 256 and int(m[2]) % 8 == 0:
        bits = int(m[2])
        return _word(_uint(bits) if m[1] else _int(bits))
    if (m := _BYTES.fullmatch(type_str)) and 1 <= int(m[1]) <= WORD:
        return _word(_fixed_bytes(int(m[1])))
    raise ValueError(f"not a static ABI type this decoder handles: {type_str!r}")


def _word(convert: Callable[[bytes], Any]) -> Decoder:
    def decode(data: bytes, at: int) -> tuple[Any, int]:
        return convert(data[at : at + WORD]), at + WORD

    return decode


def _bool(word: bytes) -> bool:
    value = int.from_bytes(word, "big")
    if value > 1:
        raise ValueError(f"bool word 0x{word.hex()} is neither 0 nor 1")
    return value == 1


def _address(word: bytes) -> str:
    if any(word[:12]):
        raise ValueError(f"address word 0x{word.hex()} has non-zero padding")
    return "0x" + word[12:].hex()  # lower case, as eth-abi returns it


def _uint(bits: int) -> Callable[[bytes], int]:
    limit = 1 << bits

    def convert(word: bytes) -> int:
        value = int.from_bytes(word, "big")
        if value >= limit:
            raise ValueError(f"uint{bits} word 0x{word.hex()} is out of range")
        return value

    return convert


def _int(bits: int) -> Callable[[bytes], int]:
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def convert(word: bytes) -> int:
        value = int.from_bytes(word, "big", signed=True)
        if not low <= value < high:
            raise ValueError(f"int{bits} word 0x{word.hex()} is out of range")
        return value

    return convert


def _fixed_bytes(size: int) -> Callable[[bytes], bytes]:
    def convert(word: bytes) -> bytes:
        if any(word[size:]):
            raise ValueError(f"bytes{size} word 0x{word.hex()} has non-zero padding")
        return word[:size]

    return convert


def topic_address(topic: bytes | str) -> str:
    """The checksummed address an indexed ``address`` topic holds."""
    raw = bytes.fromhex(topic[2:]) if isinstance(topic, str) else bytes(topic)
    if len(raw) != WORD or any(raw[:12]):
        raise ValueError(f"topic 0x{raw.hex()} does not hold an address")
    return checksum_address(raw[12:])
