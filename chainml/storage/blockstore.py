"""A log-structured, crash- and concurrency-safe block store shared by many processes.

Layout (format 1): ``<root>/packs/<stem>.pack``, append-only logs of 64-byte-headed records::

    file header   magic and format version
    BLOCK         header, then the block's bytes; flag PINNED pins it too (a small put)
    BLOCKS        header, a table of (digest, length) per block, then their bytes back to
                  back (a large file's leaves are its content, readable in one ``pread``)
    PIN / UNPIN   header only: the latest one for a CID (by stamp) wins across processes
    TOUCH         header only: written by earlier versions for a garbage collector that is
                  gone; read and ignored

A header is ``crc32 u32 | kind u8 | codec u8 | flags u16 | a u64 | b u64 | stamp u64 |
digest 32s`` (little endian), the CRC covering the other 60 bytes (for BLOCKS the digest
field holds the CRC of the table). ``stamp`` is wall-clock nanoseconds, kept monotonic per
process and above every stamp it has seen. A writer allocates disk space ahead of its pack
(``fallocate`` keeping the size), so readers, which trust the size, never see it.

Every writing process appends to a pack of its own, holding an exclusive ``flock`` on it,
so no two processes ever append to the same pack; a pack whose writer died (the kernel drops
its lock) is adopted by the next writer, which first cuts off any torn tail (a pack damaged
in any other way is left alone). A put is one ``writev`` of one record (children before
parents, the root last) plus its pin. A record counts only once it is entirely inside the
file with a valid header: the kernel extends a file only over bytes already copied, so a
reader never sees a block whose bytes are not all there, nor a root before its children,
even if the writer is killed mid-write. With ``fsync`` every put is on disk before it
returns, and a multi-block object's root is written only once the rest is. Content already
stored is never written again: re-adding it appends nothing (only a pin, if it was unpinned).

A writer that dies leaves its torn tail and its preallocated space behind; the first process
that looks at that pack afterwards (any ``refresh``, i.e. any lookup that misses) takes the
dead writer's lock, cuts the tail off and gives the space back, without waiting for the next
write.

Readers keep an in-memory index (digest -> pack, offset, length) and scan packs for new
records only when a lookup misses (or for ``pins()``), so a hit costs one ``pread``.
Nothing here hashes: verification belongs to the readers (``embedded`` / ``unixfs``).

Nothing is ever deleted: the swarm's content (weights, updates, leaves) is the audit trail
that validators and ``chainml verify`` recompute from.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from chainml.errors import IntegrityError, StorageError
from chainml.storage.cid import canonical_bytes, cid_str, make_cid_bytes, split_cid_bytes

PACKS_DIR = "packs"
_PACK = ".pack"
_NEW = ".new-"

_BODY = struct.Struct("<BBHQQQ32s")
_CRC = struct.Struct("<I")
_HEAD = struct.Struct("<IBBHQQQ32s")
HEAD_SIZE = _HEAD.size  # 64
_ROW = struct.Struct("<32sQ")
FILE_HEADER, BLOCK, PIN, UNPIN, TOUCH, BLOCKS = 0, 1, 2, 3, 4, 5
PINNED = 1
"""Flag of a BLOCK record that also pins its block (``codec`` then is the CID's codec)."""
_MAGIC = b"chainml-embedded-pack".ljust(32, b"\0")
FORMAT_VERSION = 1

PACK_ROLL_BYTES = 1 << 30
"""A writer starts a new pack once its pack reaches this size."""
PREALLOCATE_BYTES = 8 << 20
"""Disk space a writer allocates ahead past the end of its pack (the size stays put): an
append into allocated blocks skips ext4's per-page delayed-allocation bookkeeping, about a
quarter of the cost of writing a 10 KB record."""
RECLAIM_SLACK_BYTES = 1 << 20
"""Allocated space this far past a pack's end, with no writer holding the pack, is reclaimed."""
_SCAN_CHUNK = 1 << 16
_IOV_MAX = 1024
_OPEN_FLAGS = getattr(os, "O_CLOEXEC", 0)
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | _OPEN_FLAGS


class BlockNotFoundError(StorageError):
    """A block is not in the local store."""


def encode_head(kind: int, codec: int, a: int, b: int, stamp: int, digest: bytes) -> bytes:
    body = _BODY.pack(kind, codec, 0, a, b, stamp, digest)
    return _CRC.pack(zlib.crc32(body)) + body


_FILE_HEAD = encode_head(FILE_HEADER, 0, FORMAT_VERSION, 0, 0, _MAGIC)


time_ns = time.time_ns
"""The clock of every stamp (a module attribute, so tests can turn it back)."""


_fork_generation = 0
"""Bumped in every forked child: a writer opened before a fork belongs to the parent."""


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Pack:
    """A pack as a reader sees it: a read-only descriptor and how far it is scanned."""

    __slots__ = ("fd", "name", "scanned")

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd
        self.scanned = HEAD_SIZE

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _Writer:
    """This process's own pack: the locked append descriptor and where the next record goes."""

    __slots__ = ("end", "fd", "generation", "name", "pack", "reserved")

    def __init__(self, name: str, fd: int, end: int, pack: _Pack) -> None:
        self.name = name
        self.generation = _fork_generation
        self.fd = fd  # holds the exclusive flock
        self.end = end
        self.reserved = end
        self.pack = pack

    def reserve(self, size: int) -> None:
        """Allocate disk space past the end for the next ``size`` bytes or more."""
        length = max(size, PREALLOCATE_BYTES)
        if _preallocate(self.fd, self.end, length):
            self.reserved = self.end + length
        else:
            self.reserved = 1 << 62  # not supported here: never try again

    def close(self) -> None:
        """Give back the unused preallocation and the pack (its lock goes with the fd)."""
        if self.generation != _fork_generation:
            self.abandon()  # a forked child's copy: the pack is still its parent's
            return
        if self.end < self.reserved < 1 << 62:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.end)
        self.abandon()

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


Location = tuple[_Pack, int, int, int]
"""``(pack, offset, length, stamp)``."""
Entry = tuple[int, int, int, int, int, bytes]
"""``(kind, codec, offset, length, stamp, digest)``; ``offset`` is the record's for pins."""


class BlockStore:
    """Blocks keyed by sha2-256 digest in append-only packs, plus the pin log (see module)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """``root`` is the store directory; ``fsync=True`` makes every put durable before
        it returns (slower)."""
        self.root = Path(root)
        self._dir = str(self.root / PACKS_DIR)
        try:
            os.makedirs(self._dir, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the embedded store at {self.root}: {exc}") from exc
        self._fsync = fsync
        self._lock = threading.RLock()
        self._loc: dict[bytes, Location] = {}
        self._packs: dict[str, _Pack] = {}
        self._pins: dict[bytes, tuple[tuple[int, str, int], int]] = {}
        self._clock = 0
        self._writer: _Writer | None = None
        self.refresh()

    # ------------------------------------------------------------------ reading

    def get(self, cid: bytes) -> bytes:
        """The stored bytes (unverified) or ``BlockNotFoundError`` naming the CID."""
        loc = self._loc.get(cid[-32:])
        if loc is not None:
            try:
                data = os.pread(loc[0].fd, loc[2], loc[1])
            except OSError:
                return self._get_slow(cid)
            if len(data) == loc[2]:
                return data
            self._truncated(cid, loc)
        return self._get_slow(cid)

    def _get_slow(self, cid: bytes) -> bytes:
        loc = self.locate(cid)
        data = os.pread(loc[0].fd, loc[2], loc[1])
        if len(data) != loc[2]:
            self._truncated(cid, loc)
        return data

    def _truncated(self, cid: bytes, loc: Location) -> None:
        raise IntegrityError(
            f"block {cid_str(canonical_bytes(cid))} is corrupt: pack {loc[0].name}{_PACK} "
            f"under {self._dir} is shorter than its records say"
        )

    def locate(self, cid: bytes) -> Location:
        """Where the block is (looking for new records on a miss); ``BlockNotFoundError``
        if it is nowhere."""
        digest = split_cid_bytes(cid)[1]
        loc = self._loc.get(digest)
        if loc is None:
            self.refresh()
            loc = self._loc.get(digest)
        if loc is None:
            raise self.not_found(cid)
        return loc

    def block_file(self, cid: bytes) -> tuple[str, int, int]:
        """``(pack path, offset, length)`` of a block's bytes (for tools and tests)."""
        loc = self.locate(cid)
        return os.path.join(self._dir, loc[0].name + _PACK), loc[1], loc[2]

    def pack_names(self) -> list[str]:
        """The packs in the store directory (file names)."""
        return sorted(n for n in os.listdir(self._dir) if n.endswith(_PACK) and n[0] != ".")

    def read_many(self, cids: Sequence[bytes]) -> tuple[list[bytes], list[memoryview]]:
        """The blocks of ``cids`` (unverified) as views into as few reads as possible: blocks
        stored back to back (a file's leaves, as a put writes them) come from one ``pread``.
        Returns the buffers read and one view per CID, in order."""
        buffers: list[bytes] = []
        views: list[memoryview] = []
        run: list[tuple[bytes, Location]] = []

        def flush() -> None:
            pack, start = run[0][1][0], run[0][1][1]
            end = run[-1][1][1] + run[-1][1][2]
            data = _pread_exact(pack.fd, end - start, start)
            if len(data) != end - start:
                for cid, loc in run:
                    if loc[1] + loc[2] > start + len(data):
                        self._truncated(cid, loc)
            buffers.append(data)
            view = memoryview(data)
            views.extend(view[loc[1] - start : loc[1] - start + loc[2]] for _, loc in run)
            run.clear()

        for cid in cids:
            loc = self._loc.get(cid[-32:]) or self.locate(cid)
            if run:
                last = run[-1][1]
                if last[0] is not loc[0] or last[1] + last[2] != loc[1]:
                    flush()
            run.append((cid, loc))
        if run:
            flush()
        return buffers, views

    def has(self, cid: bytes) -> bool:
        return self.has_digest(split_cid_bytes(cid)[1])

    def has_digest(self, digest: bytes) -> bool:
        """Whether a block with this sha2-256 digest is stored (any codec)."""
        if digest in self._loc:
            return True
        self.refresh()
        return digest in self._loc

    def not_found(self, cid: bytes) -> BlockNotFoundError:
        return BlockNotFoundError(
            f"{cid_str(canonical_bytes(cid))} is not in the embedded store at {self.root} "
            "(add it, or import a CAR that contains it)"
        )

    # ------------------------------------------------------------------ the index

    def refresh(self) -> None:
        """Index the records other processes appended since the last look."""
        with self._lock:
            try:
                names = os.listdir(self._dir)
            except FileNotFoundError:
                names = []
            listed = set()
            for name in names:
                if name.endswith(_PACK) and not name.startswith("."):
                    stem = name[: -len(_PACK)]
                    listed.add(stem)
                    if stem not in self._packs:
                        self._discover(stem)
            for pack in list(self._packs.values()):
                if pack.name not in listed:
                    self._forget(pack)
                else:
                    self._scan_pack(pack)

    def _discover(self, stem: str) -> _Pack | None:
        path = os.path.join(self._dir, stem + _PACK)
        try:
            fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
        except FileNotFoundError:
            return None  # deleted meanwhile
        header = os.pread(fd, HEAD_SIZE, 0)
        if header != _FILE_HEAD:
            os.close(fd)
            _check_file_head(header, path)
            return None
        pack = self._packs[stem] = _Pack(stem, fd)
        return pack

    def _forget(self, pack: _Pack) -> None:
        """The pack file was removed from the directory (by hand: chainml never deletes)."""
        del self._packs[pack.name]
        self._loc = {d: loc for d, loc in self._loc.items() if loc[0] is not pack}
        pack.close()

    def _scan_pack(self, pack: _Pack) -> None:
        stat = os.fstat(pack.fd)
        size = stat.st_size
        if size > pack.scanned:
            entries, end = _scan(pack.fd, pack.scanned, size)
            self._apply(pack, entries)
            pack.scanned = end
        writer = self._writer
        if writer is not None and writer.pack is pack:
            return  # our own pack: its reservation is in use
        if pack.scanned < size or stat.st_blocks * 512 > size + RECLAIM_SLACK_BYTES:
            self._reclaim(pack)

    def _reclaim(self, pack: _Pack) -> None:
        """If no live writer holds ``pack``, cut off a dead writer's torn tail and give back
        its preallocated space now (a damaged pack is left as it is)."""
        fd = _lock_pack(os.path.join(self._dir, pack.name + _PACK), os.O_RDWR | _OPEN_FLAGS)
        if fd is None:
            return  # a live writer holds it (its tail is a record being written)
        try:
            size = os.fstat(fd).st_size
            _, end = _scan(fd, pack.scanned, size)
            if end == pack.scanned and _torn_or_clean(fd, end, size):
                os.ftruncate(fd, end)  # frees the torn bytes and the space allocated past them
        except OSError:
            pass  # reclaiming is an optimisation: the next writer cuts the tail off anyway
        finally:
            os.close(fd)

    def _apply(self, pack: _Pack, entries: list[Entry]) -> None:
        loc = self._loc
        pins = self._pins
        clock = self._clock
        for kind, codec, offset, size, stamp, digest in entries:
            if stamp > clock:
                clock = stamp
            if kind == BLOCK:
                loc[digest] = (pack, offset, size, stamp)
            elif kind in (PIN, UNPIN):
                key = (stamp, pack.name, offset)
                cid = make_cid_bytes(codec, digest)
                current = pins.get(cid)
                if current is None or current[0] < key:
                    pins[cid] = (key, kind)
        self._clock = clock

    def _tick(self) -> int:
        stamp = time_ns()
        if stamp <= self._clock:
            stamp = self._clock + 1
        self._clock = stamp
        return stamp

    # ------------------------------------------------------------------ writing

    def put(self, cid: bytes, data: bytes | memoryview) -> None:
        """Store one block; a copy already here is kept and nothing is written."""
        self.put_dag(((cid, data),))

    def put_many(self, blocks: Iterable[tuple[bytes, bytes | memoryview]]) -> None:
        """Store blocks; list children before parents (they become visible in order)."""
        self.put_dag(list(blocks))

    def put_block(self, cid: bytes, digest: bytes, data: bytes | memoryview, pin: bool) -> None:
        """``put_dag(((cid, data),), cid if pin else None)`` for a raw CID and its digest: the
        hot path for small objects, one ``writev`` of a header (carrying the pin) and bytes.

        Only the block's location is noted here; the pin (like every record of this pack)
        is indexed by the next ``refresh``, which every pin query starts with.
        """
        if digest in self._loc:
            self.put_dag(((cid, data),), cid if pin else None)
            return
        size = len(data)
        with self._lock:
            writer = self._writer
            if writer is None or writer.generation != _fork_generation:
                writer = self._open_writer()
            stamp = time_ns()
            if stamp <= self._clock:
                stamp = self._clock + 1
            self._clock = stamp
            start = writer.end
            if start + size + HEAD_SIZE > writer.reserved:
                writer.reserve(size + HEAD_SIZE)
            body = _BODY.pack(BLOCK, cid[1], PINNED if pin else 0, size, 0, stamp, digest)
            parts = (_CRC.pack(zlib.crc32(body)), body, data)
            try:
                written = os.writev(writer.fd, parts)
                if written != size + HEAD_SIZE:
                    _finish_write(writer.fd, parts, written)
                if self._fsync:
                    os.fsync(writer.fd)
            except BaseException as exc:
                self._failed(writer, exc)
            self._loc[digest] = (writer.pack, start + HEAD_SIZE, size, stamp)
            writer.end = end = start + HEAD_SIZE + size
            if end >= PACK_ROLL_BYTES:
                self._drop_writer()

    def put_dag(
        self, blocks: Sequence[tuple[bytes, bytes | memoryview]], pin: bytes | None = None
    ) -> None:
        """Store blocks, children before parents (the root last), then pin ``pin`` if given.

        New blocks go into one record of this process's pack, written with one ``writev``
        together with the pin, so the root is visible only once everything below it is.
        Blocks already in the store are not written again, and a pin that is already in force
        is not logged again: re-adding stored content appends nothing. With ``fsync`` the root
        goes in a record of its own, written once the rest is on disk.
        """
        known = self._loc
        if any(cid[-32:] in known for cid, _ in blocks):
            self.refresh()  # the current pins, and blocks other processes stored meanwhile
            if pin is not None and self._pinned_now(pin):
                pin = None
            self._append_dag(blocks, pin, reuse=True)
            return
        self._append_dag(blocks, pin, reuse=False)

    def _pinned_now(self, cid: bytes) -> bool:
        state = self._pins.get(canonical_bytes(cid))
        return state is not None and state[1] == PIN

    def _append_dag(
        self, blocks: Sequence[tuple[bytes, bytes | memoryview]], pin: bytes | None, reuse: bool
    ) -> None:
        if self._fsync and len(blocks) > 1:
            with self._lock:
                self._append(blocks[:-1], None, reuse=reuse)  # fsynced before the root
                self._append(blocks[-1:], pin, reuse=reuse)
            return
        self._append(blocks, pin, reuse=reuse)

    def _append(
        self,
        blocks: Sequence[tuple[bytes, bytes | memoryview]],
        pin: bytes | None,
        *,
        reuse: bool,
    ) -> None:
        with self._lock:
            known = self._loc
            rows: list[bytes] = []
            data: list[bytes | memoryview] = []
            sizes: list[int] = []
            digests: list[bytes] = []
            seen: set[bytes] = set()
            for cid, block in blocks:
                digest = cid[-32:]
                if digest in seen:
                    continue
                seen.add(digest)
                size = len(block)
                old = known.get(digest) if reuse else None
                if old is not None and old[2] == size:
                    continue  # already stored: nothing to write
                rows.append(_ROW.pack(digest, size))
                data.append(block)
                sizes.append(size)
                digests.append(digest)
            if not data and pin is None:
                return
            writer = self._writer
            if writer is None or writer.generation != _fork_generation:
                writer = self._open_writer()
            stamp = self._tick()
            parts: list[bytes | memoryview] = []
            start = writer.end
            body_at = start
            if data:
                table = b"".join(rows)
                crc = zlib.crc32(table).to_bytes(4, "little").ljust(32, b"\0")
                parts += (encode_head(BLOCKS, 0, len(data), sum(sizes), stamp, crc), table)
                parts += data
                body_at = start + HEAD_SIZE + len(table)
            pin_head = None
            if pin is not None:
                codec, pin_digest = split_cid_bytes(pin)
                pin_head = encode_head(PIN, codec, 0, 0, stamp, pin_digest)
                parts.append(pin_head)
            total = sum(len(part) for part in parts)
            if start + total > writer.reserved:
                writer.reserve(total)
            try:
                _write_all(writer.fd, parts, total)
                if self._fsync:
                    os.fsync(writer.fd)
            except BaseException as exc:
                self._failed(writer, exc)
            pack = writer.pack
            offset = body_at
            for digest, size in zip(digests, sizes, strict=True):
                known[digest] = (pack, offset, size, stamp)
                offset += size
            writer.end = start + total
            if writer.end >= PACK_ROLL_BYTES:
                self._drop_writer()

    def _log(self, kind: int, cid: bytes) -> None:
        """Append one pin or unpin record."""
        with self._lock:
            writer = self._writer
            if writer is None or writer.generation != _fork_generation:
                writer = self._open_writer()
            stamp = self._tick()
            codec, digest = split_cid_bytes(cid)
            head = encode_head(kind, codec, 0, 0, stamp, digest)
            try:
                _write_all(writer.fd, (head,), HEAD_SIZE)
                if self._fsync:
                    os.fsync(writer.fd)
            except BaseException as exc:
                self._failed(writer, exc)
            writer.end += HEAD_SIZE

    def _failed(self, writer: _Writer, exc: BaseException) -> None:
        """Cut off what a failed write left (or abandon the pack: whoever adopts it next
        cuts the torn tail off), then raise."""
        try:
            os.ftruncate(writer.fd, writer.end)
        except OSError:
            self._drop_writer()
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write to the embedded store at {self.root}: {exc}") from exc
        raise exc

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # releases the lock: the pack can be adopted or compacted

    def _open_writer(self) -> _Writer:
        """Adopt a pack no live process writes (cutting off a torn tail) or start one."""
        if self._writer is not None:
            if self._writer.generation == _fork_generation:
                return self._writer
            self._writer.abandon()  # a forked child: the parent keeps its lock and its pack
            self._writer = None
        try:
            writer = self._adopt() or self._create()
        except OSError as exc:
            raise StorageError(f"cannot write to the embedded store at {self.root}: {exc}") from exc
        self._writer = writer
        return writer

    def _adopt(self) -> _Writer | None:
        for name in sorted(os.listdir(self._dir)):
            if not name.endswith(_PACK) or name.startswith("."):
                continue
            stem = name[: -len(_PACK)]
            fd = _lock_pack(os.path.join(self._dir, name), _APPEND_FLAGS)
            if fd is None:
                continue
            size = os.fstat(fd).st_size
            if size >= PACK_ROLL_BYTES or os.pread(fd, HEAD_SIZE, 0) != _FILE_HEAD:
                os.close(fd)
                continue
            _, end = _scan(fd, HEAD_SIZE, size)
            if not _torn_or_clean(fd, end, size):
                os.close(fd)  # damaged, not torn: keep it as it is, write elsewhere
                continue
            # cut off the torn tail of a writer that was killed (and its preallocation)
            os.ftruncate(fd, end)
            pack = self._packs.get(stem) or self._discover(stem)
            if pack is None:
                os.close(fd)
                continue
            self._scan_pack(pack)
            return _Writer(stem, fd, end, pack)
        return None

    def _create(self) -> _Writer:
        """A new pack: created under a hidden name, locked, given its header, then renamed
        into view (so no reader or adopter ever sees it empty or unlocked)."""
        for _ in range(5):
            stem = f"{time.time_ns():x}-{os.getpid()}-{os.urandom(4).hex()}"
            path = os.path.join(self._dir, stem + _PACK)
            tmp = os.path.join(self._dir, f"{_NEW}{stem}{_PACK}")
            fd = os.open(tmp, _APPEND_FLAGS | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(fd, _FILE_HEAD)
                if self._fsync:
                    os.fsync(fd)
                os.rename(tmp, path)  # now readers and adopters can see it
                if self._fsync:
                    _fsync_dir(self._dir)
            except (BlockingIOError, FileNotFoundError):
                # someone took it for a dead writer's leftover (only possible with clocks
                # far off): leave it to them and start over under another name
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            pack = self._discover(stem)
            if pack is None:  # only if someone deleted it this very instant
                os.close(fd)
                continue
            return _Writer(stem, fd, HEAD_SIZE, pack)
        raise StorageError(f"cannot create a pack under {self._dir}: it keeps vanishing")

    # ------------------------------------------------------------------ pins

    def pin(self, cid: bytes) -> None:
        """Pin ``cid``; a pin already in force is not logged again."""
        self.refresh()
        if not self._pinned_now(cid):
            self._log(PIN, canonical_bytes(cid))

    def unpin(self, cid: bytes) -> bool:
        """Unpin; returns whether it was pinned."""
        self.refresh()
        cid = canonical_bytes(cid)
        state = self._pins.get(cid)
        if state is None or state[1] != PIN:
            return False
        self._log(UNPIN, cid)
        return True

    def pins(self) -> list[bytes]:
        """Pinned roots (binary CIDv1), after reading what other processes logged."""
        self.refresh()
        return [cid for cid, (_, kind) in self._pins.items() if kind == PIN]

    def is_pinned(self, cid: bytes) -> bool:
        self.refresh()
        state = self._pins.get(canonical_bytes(cid))
        return state is not None and state[1] == PIN

    # ------------------------------------------------------------------ lifetime

    def release(self) -> None:
        """Give up this store's pack (and its lock) so another writer may adopt it; the
        next put opens or adopts one again."""
        with self._lock:
            self._drop_writer()

    def close(self) -> None:
        """Release this store's pack (and its lock) and every descriptor it holds."""
        with self._lock:
            self._drop_writer()
            for pack in self._packs.values():
                pack.close()
            self._packs.clear()
            self._loc.clear()
            self._pins.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _scan(fd: int, start: int, size: int) -> tuple[list[Entry], int]:
    """The entries of the complete, intact records in ``[start, size)`` of a pack, and
    where they end: at a torn tail, a bad header or ``size``."""
    entries: list[Entry] = []
    pos = start
    buf = b""
    buf_at = start
    unpack = _HEAD.unpack_from
    crc32 = zlib.crc32
    while pos + HEAD_SIZE <= size:
        at = pos - buf_at
        if at < 0 or at + HEAD_SIZE > len(buf):
            buf = os.pread(fd, min(_SCAN_CHUNK, size - pos), pos)
            buf_at, at = pos, 0
            if len(buf) < HEAD_SIZE:
                break
        crc, kind, codec, flags, a, b, stamp, digest = unpack(buf, at)
        if crc32(memoryview(buf)[at + 4 : at + HEAD_SIZE]) != crc:
            break
        if kind == BLOCK:
            end = pos + HEAD_SIZE + a
            if end > size:
                break
            entries.append((BLOCK, 0, pos + HEAD_SIZE, a, stamp, digest))
            if flags & PINNED:
                entries.append((PIN, codec, pos, 0, stamp, digest))
        elif kind == BLOCKS:
            table_size = _ROW.size * a
            end = pos + HEAD_SIZE + table_size + b
            if end > size:
                break
            table_at = at + HEAD_SIZE
            if table_at + table_size <= len(buf):
                table = buf[table_at : table_at + table_size]
            else:
                table = os.pread(fd, table_size, pos + HEAD_SIZE)
            if len(table) != table_size or crc32(table).to_bytes(4, "little") != digest[:4]:
                break
            offset = pos + HEAD_SIZE + table_size
            for block_digest, length in _ROW.iter_unpack(table):
                entries.append((BLOCK, 0, offset, length, stamp, block_digest))
                offset += length
            if offset != end:
                break
        elif kind in (PIN, UNPIN, TOUCH):
            end = pos + HEAD_SIZE
            entries.append((kind, codec, pos, 0, stamp, digest))
        else:
            break
        pos = end
    return entries, pos


def _fallocate_keep_size() -> Callable[[int, int, int], bool] | None:
    """``fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)`` from libc, if there is one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    function.restype = ctypes.c_int

    def preallocate(fd: int, offset: int, length: int) -> bool:
        return function(fd, 1, offset, length) == 0  # 1 = FALLOC_FL_KEEP_SIZE

    return preallocate


_FALLOCATE = _fallocate_keep_size()


def _preallocate(fd: int, offset: int, length: int) -> bool:
    """Allocate blocks past the end of a file without changing its size (readers, which
    trust the size, see nothing); ``False`` if the system or filesystem cannot."""
    return _FALLOCATE is not None and _FALLOCATE(fd, offset, length)


def _torn_or_clean(fd: int, end: int, size: int) -> bool:
    """Whether what follows the last good record (ending at ``end``) is nothing, or the
    start of one record that was still being written: a header cut short, or a complete
    header whose record runs past the end of the file. Anything else is damage."""
    if end >= size or size - end < HEAD_SIZE:
        return True
    head = os.pread(fd, HEAD_SIZE, end)
    crc, kind, _, _, a, b, _, _ = _HEAD.unpack(head)
    if zlib.crc32(head[4:]) != crc:
        return False
    if kind == BLOCK:
        return end + HEAD_SIZE + a > size
    if kind == BLOCKS:
        return end + HEAD_SIZE + _ROW.size * a + b > size
    return False


def _lock_pack(path: str, flags: int) -> int | None:
    """Open ``path`` holding its exclusive lock, or ``None`` if someone holds it or it is
    gone (it may be renamed or deleted between the open and the lock: the inode is checked)."""
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return fd


def _check_file_head(header: bytes, path: str) -> None:
    if len(header) < HEAD_SIZE:
        return  # a foreign or truncated file: ignore it
    _, kind, _, _, version, _, _, magic = _HEAD.unpack(header)
    if kind == FILE_HEADER and magic == _MAGIC and version != FORMAT_VERSION:
        raise StorageError(
            f"{path} uses embedded store format {version}, but this chainml reads format "
            f"{FORMAT_VERSION}: upgrade chainml or use another data directory"
        )


def _write_all(fd: int, parts: Sequence[bytes | memoryview], total: int) -> None:
    """Write every part, in order, whatever each ``writev`` manages."""
    if len(parts) <= _IOV_MAX:
        written = os.writev(fd, parts)
        if written != total:
            _finish_write(fd, parts, written)
        return
    for i in range(0, len(parts), _IOV_MAX):
        batch = parts[i : i + _IOV_MAX]
        written = os.writev(fd, batch)
        expected = sum(len(part) for part in batch)
        if written != expected:
            _finish_write(fd, batch, written)


def _finish_write(fd: int, parts: Sequence[bytes | memoryview], written: int) -> None:
    """Complete a short ``writev`` (a signal, a full disk, over 2 GiB) piece by piece."""
    for part in parts:
        if written >= len(part):
            written -= len(part)
            continue
        view = memoryview(part)[written:]
        written = 0
        while view:
            view = view[os.write(fd, view) :]


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    """``os.pread`` that keeps reading past short reads (over 2 GiB, signals)."""
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
