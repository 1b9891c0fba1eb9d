"""Recursive pins for the embedded store, kept in the block store's pack indexes.

A pin or unpin is one 64-byte entry appended to the writing process's own index (a put's
pin goes in the same ``write`` as its blocks), stamped so the latest one wins across
processes; no shared file is ever rewritten, so concurrent processes never lose each other's
pins. Pins of a store written before the pack layout (``<root>/pins/<cid>``, one empty file
each) still count, and unpinning removes them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from chainml.storage.blockstore import BlockStore
from chainml.storage.cid import canonical_bytes, cid_str, to_cid_bytes

LEGACY_PINS_DIR = "pins"


class PinSet:
    """The pinned roots of one store (binary CIDv1)."""

    def __init__(self, blocks: BlockStore) -> None:
        self.blocks = blocks
        legacy = Path(blocks.root) / LEGACY_PINS_DIR
        self._legacy = str(legacy) if legacy.is_dir() else None

    def add(self, cid: bytes) -> None:
        self.blocks.pin(canonical_bytes(cid))

    def remove(self, cid: bytes) -> bool:
        """Unpin; returns whether it was pinned (unpinning twice is not an error)."""
        cid = canonical_bytes(cid)
        removed = False
        if self._legacy is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._legacy}/{cid_str(cid)}")
                removed = True
        return self.blocks.unpin(cid) or removed

    def __contains__(self, cid: bytes) -> bool:
        cid = canonical_bytes(cid)
        if self._legacy is not None and os.path.exists(f"{self._legacy}/{cid_str(cid)}"):
            return True
        return self.blocks.is_pinned(cid)

    def list(self) -> list[bytes]:
        """Pinned roots in a stable (sorted by string) order."""
        named = {cid_str(cid): cid for cid in self.blocks.pins()}
        if self._legacy is not None:
            for name in os.listdir(self._legacy):
                if name not in named:
                    named[name] = to_cid_bytes(name)
        return [named[name] for name in sorted(named)]
