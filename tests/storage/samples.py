"""Sample content and reference CIDs shared by the storage tests."""

from __future__ import annotations

import numpy as np

KIB = 1024
MIB = 1024 * KIB

KUBO_REFERENCE = {
    # content -> `ipfs add --cid-version=1 --raw-leaves` (shared NOTES.md, from real Kubo)
    b"hello world\n": "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
    b"": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    bytes(262_145): "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki",
    bytes(MIB): "bafybeiggzq4ryi7hscq5hzvzcnk4urnxt3asp37dhgvnjilf7exskximla",
}
REQUIRED_SIZES = [0, 1, 256 * KIB, 256 * KIB + 1, MIB]
"""The issue's sizes; 10 MiB is in the slow tests (and the aleph-cid test, which is fast)."""
RANDOM_SIZES = [3, 4_095, 100_003, 262_143, 524_288, 777_777, 2_345_678]


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random content (random, so chunks never deduplicate)."""
    return np.random.default_rng(seed * 1_000_003 + size).bytes(size)
