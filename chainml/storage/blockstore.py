"""A flat, crash- and concurrency-safe on-disk block store, keyed by sha2-256 digest.

Hundreds of processes share one directory, so every block is written to a private temporary
file and published with ``os.replace``: readers see a whole block or none, and two writers of
the same block (same bytes, by construction) simply race to publish identical files. Blocks
are keyed by digest alone, as in Kubo, so a raw CID and a dag-pb CID of the same bytes share
one file. Nothing here hashes: verification belongs to the readers (``unixfs``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from chainml.errors import StorageError
from chainml.storage.cid import canonical_bytes, cid_str, split_cid_bytes

_TMP_PREFIX = ".tmp-"


class BlockNotFoundError(StorageError):
    """A block is not in the local store."""


class BlockStore:
    """Blocks as files ``<root>/<2 hex>/<64 hex>`` of their sha2-256 digest."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """``fsync=True`` makes every block durable before it is published (slower)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._fsync = fsync

    def path(self, cid: bytes) -> str:
        """Where the block of ``cid`` lives (as ``str``: this is on the hot path)."""
        digest = split_cid_bytes(cid)[1].hex()
        return f"{self._root}/{digest[:2]}/{digest}"

    def has(self, cid: bytes) -> bool:
        return os.path.exists(self.path(cid))

    def get(self, cid: bytes) -> bytes:
        """The stored bytes (unverified) or ``BlockNotFoundError`` naming the CID."""
        try:
            with open(self.path(cid), "rb", buffering=0) as handle:
                return handle.read()
        except FileNotFoundError:
            raise BlockNotFoundError(
                f"{cid_str(canonical_bytes(cid))} is not in the embedded store at {self.root} "
                "(add it, or import a CAR that contains it)"
            ) from None

    def put(self, cid: bytes, data: bytes | memoryview) -> None:
        """Publish a block atomically; a complete existing copy is left alone."""
        path = self.path(cid)
        try:
            if os.stat(path).st_size == len(data):
                os.utime(path)  # fresh again: a concurrent gc's grace period now covers it
                return
        except FileNotFoundError:
            pass
        shard = os.path.dirname(path)
        tmp = f"{shard}/{_TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(shard, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException as exc:
            _unlink_quietly(tmp)
            if isinstance(exc, OSError):
                raise StorageError(
                    f"cannot write block {cid_str(canonical_bytes(cid))} under {self.root}: {exc}"
                ) from exc
            raise

    def put_many(self, blocks: Iterable[tuple[bytes, bytes | memoryview]]) -> None:
        for cid, data in blocks:
            self.put(cid, data)

    def collect(self, live: set[bytes], older_than: float) -> int:
        """Delete blocks whose digest is not in ``live`` and whose mtime is before
        ``older_than`` (a Unix time); returns how many were deleted."""
        removed = 0
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                if entry.name.startswith(_TMP_PREFIX):
                    continue
                try:
                    digest = bytes.fromhex(entry.name)
                    if digest in live or entry.stat().st_mtime >= older_than:
                        continue
                    os.unlink(entry.path)
                    removed += 1
                except (ValueError, FileNotFoundError):
                    continue
        return removed

    def remove_stale_temporaries(self) -> int:
        """Delete temporaries left by crashed writers of this host; returns how many."""
        removed = 0
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for entry in shard.iterdir():
                if entry.name.startswith(_TMP_PREFIX) and not _owner_alive(entry.name):
                    _unlink_quietly(str(entry))
                    removed += 1
        return removed


def _owner_alive(name: str) -> bool:
    try:
        pid = int(name[len(_TMP_PREFIX) :].split("-", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
