"""The default backend: a persistent block store in the data directory, no daemon needed.

It writes exactly the blocks ``ipfs add --cid-version=1 --raw-leaves`` would, so its CIDs
and CAR exports are interchangeable with a real Kubo node. Blocks and pins live in
append-only packs, one per writing process (``blockstore``): a put is one hash pass and one
``writev`` (a small object's header carries its pin), a get is one ``pread`` per run of
blocks stored together (a whole file, usually) plus verifying every block against its CID.
Any number of processes may share the directory; a writer killed mid-put leaves a torn tail
that readers ignore and the next writer cuts off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from multiformats import CID

from chainml.errors import IntegrityError, StorageError
from chainml.storage.blockstore import BlockNotFoundError, BlockStore
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
from chainml.storage.fastcid import cid_binary, cid_object, cid_object_v1
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

_RAW_PREFIX = bytes((1, RAW, 0x12, 0x20))
_sha256 = hashlib.sha256


class EmbeddedStore:
    """``Store`` on local disk: append-only packs of blocks and pins under ``<root>/packs``."""

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
        self.blocks = BlockStore(self.root, fsync=fsync)
        self.pins = PinSet(self.blocks)

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    def put(self, data: bytes, *, pin: bool = True) -> CID:
        size = len(data)
        if size > self.max_object_size:
            check_object_size(size, self.max_object_size)
        if size <= CHUNK_SIZE:  # one raw block: one hash, one writev
            digest = _sha256(data).digest()
            cid = _RAW_PREFIX + digest
            self.blocks.put_block(cid, digest, data, pin)
            return cid_object_v1(cid)
        root, blocks = build_file(data, map_fn=map_for(size // CHUNK_SIZE + 1))
        # leaves first (they are the content, back to back), the root last
        self.blocks.put_dag(list(blocks), root if pin else None)
        return cid_object(root)

    def get(self, cid: CIDLike) -> bytes:
        root = cid_binary(cid)
        if root[1] == RAW:
            block = self.blocks.get(root)
            if len(block) > self.max_object_size:
                check_object_size(len(block), self.max_object_size, f"object {cid_str(root)}")
            if _sha256(block).digest() != root[4:]:
                verify_block(root, block)  # raises, naming the CID
            return block
        size = file_size(root, self.blocks.get)
        if size > self.max_object_size:
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
        """Read raw leaves in as few ``pread`` calls as possible, verify each against its CID
        (on several cores if large), and return the content with at most one copy.

        A file put here has its leaves back to back in one pack, so the whole content is one
        read and that very buffer is returned; anything else is joined once.
        """
        buffers, views = self.blocks.read_many([leaf.cid for leaf in leaves])

        def check(index: int) -> None:
            leaf, block = leaves[index], views[index]
            if len(block) != leaf.size:
                raise IntegrityError(
                    f"block {cid_str(leaf.cid)} is corrupt: {len(block)} bytes, its parent "
                    f"{cid_str(root)} announces {leaf.size}"
                )
            verify_block(leaf.cid, block)

        for _ in map_for(len(leaves))(check, range(len(leaves))):
            pass
        if len(buffers) == 1 and len(buffers[0]) == sum(len(v) for v in views):
            return buffers[0]
        return b"".join(views)

    def has(self, cid: CIDLike) -> bool:
        return self.blocks.has(cid_binary(cid))

    def pin(self, cid: CIDLike) -> None:
        root = to_cid_bytes(cid)
        for _ in iter_dag_blocks(root, self.blocks.get):
            pass  # a pin promises the whole DAG is here and intact
        self.pins.add(root)

    def unpin(self, cid: CIDLike) -> None:
        self.pins.remove(to_cid_bytes(cid))

    def pinned(self) -> list[CID]:
        return [cid_object(root) for root in self.pins.list()]

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
        """Everything is checked before anything is written: every block against its CID, and
        every root's whole DAG present (in the CAR or already here), so a bad CAR adds nothing.
        """
        try:
            with open(path, "rb") as source:
                roots, blocks = read_car(source, self.max_object_size)
                verified: dict[bytes, tuple[bytes, bytes]] = {}
                for cid, data in blocks:
                    verify_block(cid, data)
                    verified.setdefault(split_cid_bytes(cid)[1], (cid, data))
        except OSError as exc:
            raise StorageError(f"cannot read CAR file {path}: {exc}") from exc
        canonical = [canonical_bytes(root) for root in roots]
        for root in canonical:
            self._check_complete(root, verified, path)
        # a CAR lists parents before children: store it reversed, so every block becomes
        # visible only after the blocks below it; blocks already here are not written again
        new = [block for digest, block in verified.items() if not self.blocks.has_digest(digest)]
        if new:
            self.blocks.put_many(reversed(new))
        for root in canonical:
            self.pin(root)
        return [cid_from_bytes(root) for root in canonical]

    def _check_complete(
        self, root: bytes, car: dict[bytes, tuple[bytes, bytes]], path: str | os.PathLike[str]
    ) -> None:
        """Raise unless the DAG of ``root`` is entirely in ``car`` or in this store."""

        def block(cid: bytes) -> bytes:
            found = car.get(split_cid_bytes(cid)[1])
            return found[1] if found is not None else self.blocks.get(cid)

        try:
            for cid in iter_dag_cids(root, block):
                if split_cid_bytes(cid)[1] not in car and not self.blocks.has(cid):
                    raise IntegrityError(
                        f"CAR file {path} lacks block {cid_str(canonical_bytes(cid))} of its "
                        f"root {cid_str(root)} (and this store does not have it either); "
                        "nothing was imported"
                    )
        except BlockNotFoundError as exc:  # an interior node is missing
            raise IntegrityError(
                f"CAR file {path} does not hold the whole DAG of its root {cid_str(root)} "
                f"(an interior block is missing: {str(exc).split(' is not in')[0]}); "
                "nothing was imported"
            ) from exc

    def close(self) -> None:
        """Release this process's pack (so another writer may adopt it) and descriptors."""
        self.blocks.close()

    def __del__(self) -> None:
        # The block store may outlive this object for a while (the DAG readers' closures
        # form reference cycles), but its pack should be free for the next writer now.
        with contextlib.suppress(Exception):
            self.blocks.release()
