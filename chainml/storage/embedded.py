"""The default backend: a persistent block store in the data directory, no daemon needed.

It writes exactly the blocks ``ipfs add --cid-version=1 --raw-leaves`` would, so its CIDs
and CAR exports are interchangeable with a real Kubo node.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from multiformats import CID

from chainml.errors import IntegrityError, StorageError
from chainml.storage.blockstore import BlockStore
from chainml.storage.car import read_car, write_car
from chainml.storage.cid import (
    RAW,
    CIDLike,
    canonical_bytes,
    cid_from_bytes,
    cid_str,
    split_cid_bytes,
    to_cid_bytes,
    verify_block,
)
from chainml.storage.limits import check_object_size, parse_max_object_size
from chainml.storage.parallel import map_for
from chainml.storage.pins import PinSet
from chainml.storage.unixfs import (
    CHUNK_SIZE,
    Leaf,
    build_file,
    file_size,
    iter_dag_blocks,
    iter_dag_cids,
    iter_file,
    plan_leaves,
)


class EmbeddedStore:
    """``Store`` on local disk: ``<root>/blocks`` (one file per block) and ``<root>/pins``."""

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        *,
        max_object_size: int | None = None,
        fsync: bool = False,
    ) -> None:
        """``fsync=True`` trades speed for durability across power loss (reads always verify)."""
        self.root = Path(root_dir)
        self.max_object_size = parse_max_object_size(max_object_size)
        self.blocks = BlockStore(self.root / "blocks", fsync=fsync)
        self.pins = PinSet(self.root / "pins")

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    def put(self, data: bytes, *, pin: bool = True) -> CID:
        check_object_size(len(data), self.max_object_size)
        count = len(data) // CHUNK_SIZE + 1
        root, blocks = build_file(data, map_fn=map_for(count))
        *below, top = blocks
        for _ in map_for(count)(lambda block: self.blocks.put(*block), below):
            pass
        self.blocks.put(*top)  # the root goes last: once it is visible, its DAG is complete
        if pin:
            self.pins.add(root)
        return cid_from_bytes(root)

    def get(self, cid: CIDLike) -> bytes:
        root = to_cid_bytes(cid)
        if split_cid_bytes(root)[0] == RAW:
            block = self.blocks.get(root)
            check_object_size(len(block), self.max_object_size, f"object {cid_str(root)}")
            verify_block(root, block)
            return block
        size = file_size(root, self.blocks.get)
        check_object_size(size, self.max_object_size, f"object {cid_str(root)}")
        plan = plan_leaves(root, self.blocks.get, size)
        if plan is None:  # a CIDv0-era DAG whose interior nodes carry data: read in order
            data = b"".join(iter_file(root, self.blocks.get, self.max_object_size))
        else:
            data = self._read_leaves(root, plan[1])
        if len(data) != size:
            raise IntegrityError(f"{cid_str(root)} holds {len(data)} bytes but announces {size}")
        return data

    def _read_leaves(self, root: bytes, leaves: list[Leaf]) -> bytes:
        """Read and verify raw leaves (on several cores if large), then join them once.

        Each leaf is hashed right after it is read, while it is still in cache; joining the
        pieces costs one copy, which is cheaper than filling a zeroed ``bytearray``.
        """

        def load(leaf: Leaf) -> bytes:
            block = self.blocks.get(leaf.cid)
            if len(block) != leaf.size:
                raise IntegrityError(
                    f"block {cid_str(leaf.cid)} is corrupt: {len(block)} bytes, its parent "
                    f"{cid_str(root)} announces {leaf.size}"
                )
            verify_block(leaf.cid, block)
            return block

        return b"".join(map_for(len(leaves))(load, leaves))

    def has(self, cid: CIDLike) -> bool:
        return self.blocks.has(to_cid_bytes(cid))

    def pin(self, cid: CIDLike) -> None:
        root = to_cid_bytes(cid)
        for _ in iter_dag_blocks(root, self.blocks.get):
            pass  # a pin promises the whole DAG is here and intact
        self.pins.add(root)

    def unpin(self, cid: CIDLike) -> None:
        self.pins.remove(to_cid_bytes(cid))

    def pinned(self) -> list[CID]:
        return [cid_from_bytes(root) for root in self.pins.list()]

    def gc(self, *, grace_seconds: float = 300.0) -> int:
        """Delete blocks no pin reaches; returns how many. Like ``ipfs repo gc``.

        Other processes may be putting objects meanwhile: they write blocks before pinning
        the root, and re-putting existing content refreshes its blocks' mtime. So blocks
        younger than ``grace_seconds`` are always kept; use 0 only when no one else writes.
        If a pinned DAG is incomplete, this raises before deleting anything.
        """
        started = time.time()
        live = {
            split_cid_bytes(cid)[1]
            for root in self.pins.list()
            for cid in iter_dag_cids(root, self.blocks.get)
        }
        return self.blocks.collect(live, older_than=started - grace_seconds)

    def export_car(self, cid: CIDLike, path: str | os.PathLike[str]) -> None:
        root = to_cid_bytes(cid)
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            with open(tmp, "wb") as out:
                write_car(out, [root], iter_dag_blocks(root, self.blocks.get))
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"cannot write CAR file {target}: {exc}") from exc
        finally:
            if tmp.exists():
                tmp.unlink()

    def import_car(self, path: str | os.PathLike[str]) -> list[CID]:
        try:
            with open(path, "rb") as source:
                roots, blocks = read_car(source, self.max_object_size)
                for cid, data in blocks:
                    verify_block(cid, data)
                    self.blocks.put(cid, data)
        except OSError as exc:
            raise StorageError(f"cannot read CAR file {path}: {exc}") from exc
        result = []
        for root in roots:
            canonical = canonical_bytes(root)
            self.pin(canonical)
            result.append(cid_from_bytes(canonical))
        return result

    def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""
