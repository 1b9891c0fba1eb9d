"""The embedded store: persistence, pins, verified reads, limits, crashes and concurrent use."""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import time
import traceback
from pathlib import Path

import pytest

from chainml.errors import IntegrityError, StorageError
from chainml.storage import blockstore
from chainml.storage.blockstore import (
    HEAD_SIZE,
    PACKS_DIR,
    BlockNotFoundError,
    BlockStore,
    encode_head,
)
from chainml.storage.cid import (
    DAG_PB,
    RAW,
    cid_from_bytes,
    cid_str,
    make_cid_bytes,
    to_cid_bytes,
)
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.fastcid import cid_binary, cid_object, cid_object_v1
from chainml.storage.limits import ObjectTooLargeError
from chainml.storage.unixfs import CHUNK_SIZE, build_file
from tests.storage.samples import MIB, payload

MISSING = "bafkreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe"


def blocks_of(data: bytes) -> list[tuple[bytes, bytes]]:
    _, blocks = build_file(data)
    return [(cid, bytes(block)) for cid, block in blocks]


def leaf_cids(data: bytes) -> list[bytes]:
    return [cid for cid, _ in blocks_of(data) if cid[1] == RAW]


def damage_in_place(store: EmbeddedStore, cid, change) -> None:
    """Rewrite a stored block's bytes on disk (same length), as bit rot or tampering would."""
    path, offset, length = store.blocks.block_file(to_cid_bytes(cid))
    with open(path, "r+b") as handle:
        handle.seek(offset)
        old = handle.read(length)
        new = change(bytearray(old))
        assert len(new) == length
        handle.seek(offset)
        handle.write(bytes(new))


def pack_paths(root: Path) -> list[Path]:
    return sorted(p for p in (root / PACKS_DIR).iterdir() if p.name.endswith(".pack"))


def test_content_survives_reopening_the_store(tmp_path: Path):
    data = payload(3 * CHUNK_SIZE + 5)
    small = payload(5000)
    store = EmbeddedStore(tmp_path)
    cid, small_cid = store.put(data), store.put(small)
    store.close()
    assert EmbeddedStore(tmp_path).get(cid) == data
    assert EmbeddedStore(tmp_path).get(small_cid) == small
    assert set(EmbeddedStore(tmp_path).pinned()) == {cid, small_cid}


def test_put_pins_by_default_and_unpin_is_idempotent(embedded: EmbeddedStore):
    pinned = embedded.put(b"pinned")
    loose = embedded.put(b"loose", pin=False)
    assert embedded.pinned() == [pinned]
    embedded.pin(loose)
    assert set(embedded.pinned()) == {pinned, loose}
    embedded.unpin(pinned)
    embedded.unpin(pinned)
    assert embedded.pinned() == [loose]
    assert embedded.has(pinned)  # unpinning does not delete content
    embedded.pin(pinned)
    assert set(EmbeddedStore(embedded.root).pinned()) == {pinned, loose}


def test_pins_and_unpins_from_other_processes_are_seen(tmp_path: Path):
    one, two = EmbeddedStore(tmp_path), EmbeddedStore(tmp_path)
    cid = one.put(b"shared")
    assert two.pinned() == [cid]
    two.unpin(cid)
    assert one.pinned() == []
    one.pin(cid)
    assert two.pinned() == [cid]


def test_has_reports_presence(embedded: EmbeddedStore):
    assert not embedded.has(MISSING)
    cid = embedded.put(payload(MIB))
    assert embedded.has(cid)


def test_missing_cid_raises_a_clear_error_naming_it(embedded: EmbeddedStore):
    with pytest.raises(BlockNotFoundError, match=MISSING):
        embedded.get(MISSING)


def test_pin_of_an_incomplete_dag_fails_naming_the_missing_block(embedded: EmbeddedStore):
    data = payload(2 * CHUNK_SIZE)
    root = build_file(data)[0]
    second = leaf_cids(data)[1]
    embedded.blocks.put_many((c, b) for c, b in blocks_of(data) if c != second)
    with pytest.raises(BlockNotFoundError, match=cid_str(second)):
        embedded.pin(root)
    assert embedded.pinned() == []


def test_corrupt_raw_block_is_detected_and_named(embedded: EmbeddedStore):
    cid = embedded.put(b"the original content")
    damage_in_place(embedded, cid, lambda _: b"the tampered content")
    with pytest.raises(IntegrityError, match=f"{cid}.*corrupt"):
        embedded.get(cid)
    with pytest.raises(IntegrityError, match=f"{cid}.*corrupt"):
        EmbeddedStore(embedded.root).get(cid)


@pytest.mark.parametrize("damage", ["flip", "truncate", "substitute"])
def test_corrupt_leaf_of_a_large_object_is_detected_and_named(tmp_path: Path, damage):
    data = payload(20 * CHUNK_SIZE + 7)
    victim = leaf_cids(data)[13]
    store = EmbeddedStore(tmp_path)
    if damage == "truncate":  # a store that holds a short copy of the leaf
        store.blocks.put_many((c, b[:-1] if c == victim else b) for c, b in blocks_of(data))
        cid = cid_from_bytes(build_file(data)[0])
    else:
        cid = store.put(data)
        if damage == "flip":
            damage_in_place(store, victim, lambda b: b[:1000] + bytes([b[1000] ^ 1]) + b[1001:])
        else:
            damage_in_place(store, victim, lambda _: payload(CHUNK_SIZE, seed=99))
    with pytest.raises(IntegrityError, match=cid_str(victim)):
        store.get(cid)


def test_corrupt_interior_node_is_detected(embedded: EmbeddedStore):
    cid = embedded.put(payload(3 * CHUNK_SIZE))
    damage_in_place(embedded, cid, lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    with pytest.raises(IntegrityError, match=str(cid)):
        embedded.get(cid)


def test_oversized_put_is_refused_before_writing(tmp_path: Path):
    store = EmbeddedStore(tmp_path, max_object_size=MIB)
    with pytest.raises(ObjectTooLargeError, match="maximum object size"):
        store.put(payload(MIB + 1))
    assert store.pinned() == []
    assert pack_paths(tmp_path) == []


def test_oversized_get_is_refused_from_the_root_alone(tmp_path: Path):
    data = payload(4 * MIB)
    root, node = blocks_of(data)[-1]
    EmbeddedStore(tmp_path).blocks.put(root, node)  # the root only: no leaf is here
    small = EmbeddedStore(tmp_path, max_object_size=MIB)
    with pytest.raises(ObjectTooLargeError, match=cid_str(root)):
        small.get(root)  # would be BlockNotFoundError if it had read any leaf


def test_max_object_size_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINML_MAX_OBJECT_SIZE", "10")
    with pytest.raises(ObjectTooLargeError):
        EmbeddedStore(tmp_path).put(b"eleven byte")


@pytest.mark.parametrize("size", [100, 3 * CHUNK_SIZE])
def test_a_failed_write_leaves_no_block_visible(embedded: EmbeddedStore, monkeypatch, size):
    kept = embedded.put(b"written before the disk filled up")
    (pack,) = pack_paths(embedded.root)
    before = pack.stat().st_size
    data = payload(size, seed=3)

    def disk_full(fd: int, buffers) -> int:
        os.write(fd, bytes(buffers[0])[:10])  # a few bytes get through, then it fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        embedded.put(data)
    monkeypatch.undo()
    root = build_file(data)[0]
    assert not embedded.has(root)
    assert pack.stat().st_size == before  # the partial record was cut off again
    assert EmbeddedStore(embedded.root).get(embedded.put(data)) == data
    assert EmbeddedStore(embedded.root).get(kept) == b"written before the disk filled up"


def test_a_torn_record_at_the_end_of_a_pack_is_ignored_then_cut_off(tmp_path: Path):
    store = EmbeddedStore(tmp_path)
    kept = store.put(b"complete")
    store.close()
    (pack,) = pack_paths(tmp_path)
    good_size = pack.stat().st_size
    digest = bytes(32)
    with open(pack, "ab") as handle:  # a header announcing 5000 bytes, and 100 of them
        handle.write(encode_head(blockstore.BLOCK, RAW, 5000, 0, 1, digest) + bytes(100))
    reader = EmbeddedStore(tmp_path)
    assert reader.get(kept) == b"complete"
    assert reader.pinned() == [kept]
    assert not reader.has(make_cid_bytes(RAW, digest))
    cid = reader.put(b"after the crash")  # the writer adopts the pack and cuts the tail
    assert pack_paths(tmp_path) == [pack]
    assert pack.stat().st_size == good_size + HEAD_SIZE + len(b"after the crash")
    assert EmbeddedStore(tmp_path).get(cid) == b"after the crash"


def test_a_damaged_record_ends_the_pack_which_is_then_left_alone(tmp_path: Path):
    store = EmbeddedStore(tmp_path)
    first = store.put(b"first")
    store.close()
    (pack,) = pack_paths(tmp_path)
    with open(pack, "ab") as handle:
        head = bytearray(encode_head(blockstore.BLOCK, RAW, 6, 0, 1, bytes(32)))
        head[10] ^= 0xFF  # a bad CRC
        handle.write(bytes(head) + b"second")
    reopened = EmbeddedStore(tmp_path)
    assert reopened.get(first) == b"first"
    assert reopened.pinned() == [first]
    damaged_size = pack.stat().st_size
    later = reopened.put(b"later")  # damage, not a torn write: that pack is left alone
    assert len(pack_paths(tmp_path)) == 2
    assert not EmbeddedStore(tmp_path).has(make_cid_bytes(RAW, bytes(32)))  # refresh, reclaim
    assert pack.stat().st_size == damaged_size
    assert reopened.get(first) == b"first" and reopened.get(later) == b"later"


def _worker(root: str, worker: int, rounds: int) -> list[tuple[str, int]]:
    """Put and read back shared and private objects; readers race the writers."""
    store = EmbeddedStore(root)
    seen = []
    for i in range(rounds):
        shared = payload(30_000 + i, seed=7)  # every worker writes the same blocks
        private = payload(20_000 + i, seed=100 + worker)
        for data in (shared, private):
            cid = store.put(data)
            assert store.get(cid) == data
            seen.append((cid_str(cid), len(data)))
        big = payload(2 * CHUNK_SIZE + i, seed=5)
        assert store.get(store.put(big)) == big
    return seen


def test_concurrent_processes_share_one_store_safely(tmp_path: Path):
    root = str(tmp_path / "shared")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_worker, [(root, w, 25) for w in range(8)])
    store = EmbeddedStore(root)
    expected = {cid: size for result in results for cid, size in result}
    assert len(expected) == 25 + 8 * 25
    for cid, size in expected.items():
        assert len(store.get(cid)) == size
    assert {cid_str(c) for c in store.pinned()} >= set(expected)
    names = os.listdir(Path(root) / PACKS_DIR)
    assert not [n for n in names if n.startswith(".")]
    assert len(names) <= 4  # at most one pack per process that ever wrote at once


def _writer(root: str, seed: int, rounds: int, done: str) -> None:
    try:
        store = EmbeddedStore(root)
        rng = random.Random(seed)
        for i in range(rounds):
            size = rng.choice([rng.randint(1_000, 50_000), 2 * CHUNK_SIZE + rng.randint(1, 999)])
            store.put(payload(size, seed=seed * 1000 + i))
            if i % 7 == 0:
                store.put(payload(40_000, seed=1))  # content every writer shares
    except BaseException:
        Path(done).write_text(traceback.format_exc())
        raise
    Path(done).write_text("ok")


def _writers_report(done: list[str]) -> str:
    return "\n".join(Path(d).read_text() if Path(d).exists() else f"{d}: no report" for d in done)


def _read_everything_visible(store: EmbeddedStore) -> int:
    """Every pinned root must be complete and intact the moment it is visible."""
    count = 0
    for cid in store.pinned():
        store.get(cid)
        count += 1
    return count


def test_readers_never_see_a_partial_object_while_writers_write(tmp_path: Path):
    root = str(tmp_path / "shared")
    ctx = multiprocessing.get_context("spawn")
    writers = [
        ctx.Process(target=_writer, args=(root, seed, 40, str(tmp_path / f"done{seed}")))
        for seed in range(3)
    ]
    reader = EmbeddedStore(root)
    for process in writers:
        process.start()
    looks = 0
    try:
        while any(process.is_alive() for process in writers):
            looks += 1
            _read_everything_visible(reader)
    finally:
        for process in writers:
            process.join(60)
    assert all(process.exitcode == 0 for process in writers), _writers_report(
        [str(tmp_path / f"done{seed}") for seed in range(3)]
    )
    assert looks > 1
    assert _read_everything_visible(EmbeddedStore(root)) == 3 * 40 + 1


def _put_then_die_mid_write(root: str, data: bytes, fraction: float) -> None:
    store = EmbeddedStore(root)
    store.put(b"put before the crash")
    real = os.writev

    def dying_writev(fd: int, buffers) -> int:
        joined = b"".join(bytes(b) for b in buffers)
        os.write(fd, joined[: int(len(joined) * fraction)])
        os.kill(os.getpid(), signal.SIGKILL)
        return real(fd, buffers)  # never reached

    os.writev = dying_writev
    store.put(data)


@pytest.mark.parametrize(
    ("size", "fraction"),
    [(20_000, 0.01), (20_000, 0.5), (20_000, 0.999), (5 * CHUNK_SIZE + 3, 0.5)],
)
def test_a_writer_killed_mid_put_leaves_a_consistent_store(tmp_path: Path, size, fraction):
    root = str(tmp_path / "store")
    data = payload(size, seed=21)
    process = multiprocessing.get_context("spawn").Process(
        target=_put_then_die_mid_write, args=(root, data, fraction)
    )
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    store = EmbeddedStore(root)
    (before,) = store.pinned()
    assert store.get(before) == b"put before the crash"
    assert not store.has(build_file(data)[0])
    cid = store.put(data)  # adopts the dead writer's pack, cutting off its torn tail
    assert len(pack_paths(Path(root))) == 1
    reopened = EmbeddedStore(root)
    assert reopened.get(cid) == data
    assert set(reopened.pinned()) == {before, cid}


def _put_forever(root: str, log: str, ready: str) -> None:
    store = EmbeddedStore(root)
    rng = random.Random(os.getpid())
    Path(ready).touch()
    with open(log, "a", buffering=1) as out:
        for i in range(10**9):
            size = rng.choice([rng.randint(1, 60_000), rng.randint(CHUNK_SIZE, 12 * CHUNK_SIZE)])
            cid = store.put(payload(size, seed=i + rng.randint(0, 10**6)), pin=i % 3 != 0)
            out.write(f"{cid} {size}\n")  # only once put returned


def test_sigkill_at_random_moments_never_breaks_the_store(tmp_path: Path):
    root = str(tmp_path / "store")
    log = tmp_path / "returned.txt"
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(5)
    for attempt in range(6):
        ready = tmp_path / f"ready{attempt}"
        process = ctx.Process(target=_put_forever, args=(root, str(log), str(ready)))
        process.start()
        while not ready.exists() and process.is_alive():
            time.sleep(0.01)
        time.sleep(0.05 + rng.random() * 0.4)
        os.kill(process.pid, signal.SIGKILL)
        process.join(30)
        store = EmbeddedStore(root)
        for cid in store.pinned():  # a pinned root is always a complete, intact DAG
            store.get(cid)
        store.close()
    store = EmbeddedStore(root)
    returned = [line.split() for line in log.read_text().splitlines() if line.strip()]
    assert len(returned) > 20
    for cid, size in returned:  # everything a put returned is durable and intact
        assert len(store.get(cid)) == int(size)
    assert len(pack_paths(Path(root))) == 1  # every new writer adopted the dead one's pack


def test_a_forked_child_writes_to_a_pack_of_its_own(tmp_path: Path):
    store = EmbeddedStore(tmp_path)
    parent = store.put(b"from the parent")
    process = multiprocessing.get_context("fork").Process(
        target=lambda: store.put(b"from the child")
    )
    process.start()
    process.join(30)
    assert process.exitcode == 0
    again = store.put(b"the parent again")
    assert len(pack_paths(tmp_path)) == 2
    reopened = EmbeddedStore(tmp_path)
    assert reopened.get(parent) == b"from the parent"
    assert reopened.get(again) == b"the parent again"
    assert reopened.get(cid_from_bytes(build_file(b"from the child")[0])) == b"from the child"


def _put_one(root: str, text: str) -> str:
    return str(EmbeddedStore(root).put(text.encode()))


def test_later_processes_reuse_the_pack_of_earlier_ones(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    cids = []
    for i in range(3):
        with ctx.Pool(1) as pool:
            cids.append(pool.apply(_put_one, (str(tmp_path), f"object {i}")))
    assert len(pack_paths(tmp_path)) == 1
    store = EmbeddedStore(tmp_path)
    assert [store.get(c) for c in cids] == [b"object 0", b"object 1", b"object 2"]


def test_a_thousand_small_updates_round_trip_quickly(embedded: EmbeddedStore):
    """The swarm puts and gets ~1,000 updates of tens of KB per round, within a 60 s budget."""
    updates = [payload(30_000, seed=i) for i in range(1000)]
    start = time.perf_counter()
    cids = [embedded.put(update) for update in updates]
    assert [embedded.get(cid) for cid in cids] == updates
    elapsed = time.perf_counter() - start
    assert elapsed < 6.0, f"1,000 puts + gets took {elapsed:.2f} s"


def test_a_store_of_a_newer_format_is_refused_naming_the_file(tmp_path: Path):
    packs = tmp_path / PACKS_DIR
    packs.mkdir()
    magic = blockstore._MAGIC
    (packs / "future.pack").write_bytes(encode_head(blockstore.FILE_HEADER, 0, 2, 0, 0, magic))
    with pytest.raises(StorageError, match=r"future\.pack.*format 2"):
        EmbeddedStore(tmp_path)


def test_fsync_mode_round_trips(tmp_path: Path):
    store = EmbeddedStore(tmp_path, fsync=True)
    small, big = payload(1000, seed=61), payload(2 * CHUNK_SIZE + 1, seed=62)
    cids = [store.put(small), store.put(big)]
    store.close()
    assert [EmbeddedStore(tmp_path).get(c) for c in cids] == [small, big]


def test_preallocated_space_is_never_visible_and_is_given_back(tmp_path: Path):
    store = EmbeddedStore(tmp_path)
    cid = store.put(b"tiny")
    (pack,) = pack_paths(tmp_path)
    assert pack.stat().st_size == 2 * HEAD_SIZE + 4  # file header, record header, bytes
    store.close()
    assert pack.stat().st_blocks * 512 < 1 << 20
    assert EmbeddedStore(tmp_path).get(cid) == b"tiny"


@pytest.mark.parametrize("codec", [RAW, DAG_PB])
def test_fast_cid_conversions_match_multiformats(codec: int):
    raw = make_cid_bytes(codec, payload(32, seed=codec))
    fast, slow = cid_object(raw), cid_from_bytes(raw)
    assert fast == slow and hash(fast) == hash(slow) and str(fast) == str(slow)
    assert cid_object_v1(raw) == slow
    assert bytes(fast) == raw
    assert cid_binary(fast) == cid_binary(slow) == cid_binary(str(slow)) == raw
    assert cid_binary(slow.set(base="base58btc")) == raw
    assert to_cid_bytes(fast) == raw


def test_block_store_alone_keeps_blocks_by_digest(tmp_path: Path):
    store = BlockStore(tmp_path)
    raw = make_cid_bytes(RAW, payload(32, seed=1))
    store.put(raw, b"not verified here")
    assert store.get(raw) == b"not verified here"
    assert BlockStore(tmp_path).get(make_cid_bytes(DAG_PB, raw[4:])) == b"not verified here"


def test_threads_share_one_store(embedded: EmbeddedStore):
    from concurrent.futures import ThreadPoolExecutor

    def work(seed: int) -> list[tuple[object, bytes]]:
        done = []
        for i in range(30):
            data = payload(1_000 + 997 * i + (3 * CHUNK_SIZE if i % 10 == 0 else 0), seed=seed)
            done.append((embedded.put(data), data))
            embedded.put(payload(5_000, seed=0))  # all threads re-put this one
        return done

    with ThreadPoolExecutor(6) as pool:
        results = [item for part in pool.map(work, range(6)) for item in part]
    reopened = EmbeddedStore(embedded.root)
    for cid, data in results:
        assert embedded.get(cid) == data and reopened.get(cid) == data
    assert len(reopened.pinned()) == 6 * 30 + 1
