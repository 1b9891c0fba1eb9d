"""The embedded store: persistence, pins, verified reads, limits and concurrent use."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from chainml.errors import IntegrityError, StorageError
from chainml.storage.blockstore import BlockNotFoundError
from chainml.storage.cid import cid_str, to_cid_bytes
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.limits import ObjectTooLargeError
from chainml.storage.unixfs import CHUNK_SIZE, build_file
from tests.storage.samples import MIB, payload

MISSING = "bafkreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe"


def block_path(store: EmbeddedStore, cid) -> Path:
    return Path(store.blocks.path(to_cid_bytes(cid)))


def leaf_cids(data: bytes) -> list[bytes]:
    _, blocks = build_file(data)
    return [cid for cid, block in blocks if cid[1] == 0x55]


def test_content_survives_reopening_the_store(tmp_path: Path):
    data = payload(3 * CHUNK_SIZE + 5)
    cid = EmbeddedStore(tmp_path).put(data)
    assert EmbeddedStore(tmp_path).get(cid) == data
    assert EmbeddedStore(tmp_path).pinned() == [cid]


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


def test_has_reports_presence(embedded: EmbeddedStore):
    assert not embedded.has(MISSING)
    cid = embedded.put(payload(MIB))
    assert embedded.has(cid)


def test_missing_cid_raises_a_clear_error_naming_it(embedded: EmbeddedStore):
    with pytest.raises(BlockNotFoundError, match=MISSING):
        embedded.get(MISSING)


def test_pin_of_an_incomplete_dag_fails_naming_the_missing_block(embedded: EmbeddedStore):
    data = payload(2 * CHUNK_SIZE)
    cid = embedded.put(data, pin=False)
    second = leaf_cids(data)[1]
    os.unlink(embedded.blocks.path(second))
    with pytest.raises(BlockNotFoundError, match=cid_str(second)):
        embedded.pin(cid)
    assert embedded.pinned() == []


def test_corrupt_raw_block_is_detected_and_named(embedded: EmbeddedStore):
    cid = embedded.put(b"the original content")
    path = block_path(embedded, cid)
    path.write_bytes(b"the tampered content")
    with pytest.raises(IntegrityError, match=f"{cid}.*corrupt"):
        embedded.get(cid)


@pytest.mark.parametrize("damage", ["flip", "truncate", "substitute"])
def test_corrupt_leaf_of_a_large_object_is_detected_and_named(embedded: EmbeddedStore, damage):
    data = payload(20 * CHUNK_SIZE + 7)
    cid = embedded.put(data)
    victim = leaf_cids(data)[13]
    path = Path(embedded.blocks.path(victim))
    block = bytearray(path.read_bytes())
    if damage == "flip":
        block[1000] ^= 0x01
    elif damage == "truncate":
        del block[-1]
    else:
        block = bytearray(payload(CHUNK_SIZE, seed=99))
    path.write_bytes(bytes(block))
    with pytest.raises(IntegrityError, match=cid_str(victim)):
        embedded.get(cid)


def test_corrupt_interior_node_is_detected(embedded: EmbeddedStore):
    cid = embedded.put(payload(3 * CHUNK_SIZE))
    path = block_path(embedded, cid)
    node = bytearray(path.read_bytes())
    node[-1] ^= 0x01
    path.write_bytes(bytes(node))
    with pytest.raises(IntegrityError, match=str(cid)):
        embedded.get(cid)


def test_oversized_put_is_refused_before_writing(tmp_path: Path):
    store = EmbeddedStore(tmp_path, max_object_size=MIB)
    with pytest.raises(ObjectTooLargeError, match="maximum object size"):
        store.put(payload(MIB + 1))
    assert store.pinned() == []
    assert not any(p.is_file() for p in (tmp_path / "blocks").rglob("*"))


def test_oversized_get_is_refused_from_the_root_alone(tmp_path: Path):
    data = payload(4 * MIB)
    cid = EmbeddedStore(tmp_path).put(data)
    for leaf in leaf_cids(data):
        os.unlink(EmbeddedStore(tmp_path).blocks.path(leaf))
    small = EmbeddedStore(tmp_path, max_object_size=MIB)
    with pytest.raises(ObjectTooLargeError, match=str(cid)):
        small.get(cid)  # would be BlockNotFoundError if it had read any leaf


def test_max_object_size_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINML_MAX_OBJECT_SIZE", "10")
    with pytest.raises(ObjectTooLargeError):
        EmbeddedStore(tmp_path).put(b"eleven byte")


def test_a_failed_write_leaves_no_block_visible(embedded: EmbeddedStore, monkeypatch):
    data = b"never fully written"
    cid = to_cid_bytes(embedded.put(b"warm up the shard dirs"))

    def broken_write(fd: int, view) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", broken_write)
    with pytest.raises(StorageError, match="No space left"):
        embedded.put(data)
    monkeypatch.undo()
    assert not embedded.has(build_file(data)[0])
    blocks_dir = Path(embedded.blocks.path(cid)).parent.parent
    assert not list(blocks_dir.rglob(".tmp-*"))


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
    assert not list(Path(root).rglob(".tmp-*"))


def test_a_thousand_small_updates_round_trip_quickly(embedded: EmbeddedStore):
    """The swarm puts and gets ~1,000 updates of tens of KB per round, within a 60 s budget."""
    updates = [payload(30_000, seed=i) for i in range(1000)]
    start = time.perf_counter()
    cids = [embedded.put(update) for update in updates]
    assert [embedded.get(cid) for cid in cids] == updates
    elapsed = time.perf_counter() - start
    assert elapsed < 6.0, f"1,000 puts + gets took {elapsed:.2f} s"


def test_stale_temporaries_of_dead_writers_are_removed(embedded: EmbeddedStore):
    cid = embedded.put(b"x")
    shard = Path(embedded.blocks.path(to_cid_bytes(cid))).parent
    dead = shard / ".tmp-999999999-deadbeef"
    dead.write_bytes(b"half a blo")
    mine = shard / f".tmp-{os.getpid()}-cafe"
    mine.write_bytes(b"in progress")
    assert embedded.blocks.remove_stale_temporaries() == 1
    assert not dead.exists() and mine.exists()


def test_gc_deletes_only_what_no_pin_reaches(embedded: EmbeddedStore):
    kept_data = payload(3 * CHUNK_SIZE, seed=41)
    gone_data = payload(3 * CHUNK_SIZE, seed=42)
    kept = embedded.put(kept_data)
    gone = embedded.put(gone_data, pin=False)
    assert embedded.gc() == 0  # everything is inside the grace period
    assert embedded.gc(grace_seconds=0) == 4  # three leaves and the root of `gone`
    assert embedded.get(kept) == kept_data
    assert not embedded.has(gone)


def test_re_putting_content_protects_it_from_a_concurrent_gc(embedded: EmbeddedStore):
    data = payload(2 * CHUNK_SIZE, seed=43)
    cid = embedded.put(data, pin=False)
    old = time.time() - 3600
    for path in (embedded.root / "blocks").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    embedded.put(data, pin=False)  # another process is about to pin it
    assert embedded.gc(grace_seconds=60) == 0
    assert embedded.get(cid) == data


def test_gc_refuses_to_run_on_an_incomplete_pinned_dag(embedded: EmbeddedStore):
    data = payload(2 * CHUNK_SIZE, seed=44)
    cid = embedded.put(data)
    loose = embedded.put(b"unpinned", pin=False)
    os.unlink(block_path(embedded, cid))
    with pytest.raises(BlockNotFoundError, match=str(cid)):
        embedded.gc(grace_seconds=0)
    assert embedded.has(loose)
