"""Recursive pins for the embedded store: one empty file per pinned root.

A file per pin makes pin and unpin single atomic filesystem operations, so concurrent
processes never lose each other's pins (a shared index file would need locking).
"""

from __future__ import annotations

import os
from pathlib import Path

from chainml.storage.cid import cid_str, to_cid_bytes


class PinSet:
    """Pinned roots as empty files named by their base32 CID."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)

    def add(self, cid: bytes) -> None:
        fd = os.open(f"{self._root}/{cid_str(cid)}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)

    def remove(self, cid: bytes) -> bool:
        """Unpin; returns whether it was pinned (unpinning twice is not an error)."""
        try:
            os.unlink(f"{self._root}/{cid_str(cid)}")
        except FileNotFoundError:
            return False
        return True

    def __contains__(self, cid: bytes) -> bool:
        return os.path.exists(f"{self._root}/{cid_str(cid)}")

    def list(self) -> list[bytes]:
        """Pinned roots in a stable (sorted by string) order."""
        return [to_cid_bytes(name) for name in sorted(os.listdir(self._root))]
