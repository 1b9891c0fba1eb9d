"""Recursive pins for the embedded store, kept in the block store's pack indexes.

A pin or unpin is one 64-byte entry appended to the writing process's own pack (a put's pin
goes in the same ``write`` as its blocks), stamped so the latest one wins across processes; no
shared file is ever rewritten, so concurrent processes never lose each other's pins.
"""

from __future__ import annotations

from chainml.storage.blockstore import BlockStore
from chainml.storage.cid import canonical_bytes, cid_str


class PinSet:
    """The pinned roots of one store (binary CIDv1)."""

    def __init__(self, blocks: BlockStore) -> None:
        self.blocks = blocks

    def add(self, cid: bytes) -> None:
        self.blocks.pin(canonical_bytes(cid))

    def remove(self, cid: bytes) -> bool:
        """Unpin; returns whether it was pinned (unpinning twice is not an error)."""
        return self.blocks.unpin(canonical_bytes(cid))

    def __contains__(self, cid: bytes) -> bool:
        return self.blocks.is_pinned(canonical_bytes(cid))

    def list(self) -> list[bytes]:
        """Pinned roots in a stable (sorted by string) order."""
        return sorted(self.blocks.pins(), key=cid_str)
