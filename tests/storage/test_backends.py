"""Behaviour both backends share, and what only the Kubo RPC backend must handle."""

from __future__ import annotations

import socket
import time

import pytest

from chainml.errors import IntegrityError, StorageError
from chainml.storage.cid import cid_str
from chainml.storage.kubo import KuboStore
from chainml.storage.limits import ObjectTooLargeError
from chainml.storage.store import Store
from chainml.storage.unixfs import CHUNK_SIZE, file_cid
from tests.storage.samples import MIB, RANDOM_SIZES, REQUIRED_SIZES, payload

MISSING = "bafkreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe"
MISSING_TREE = "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"  # 262,145 zeros


@pytest.mark.parametrize("size", [*REQUIRED_SIZES, *RANDOM_SIZES[:3]])
def test_round_trip(store: Store, size: int):
    data = payload(size, seed=11)
    cid = store.put(data)
    assert cid_str(cid) == cid_str(file_cid(data))
    assert store.get(cid) == data
    assert store.get(cid_str(cid)) == data
    assert store.has(cid)


@pytest.mark.slow
def test_round_trip_ten_mib(store: Store):
    data = payload(10 * MIB, seed=12)
    assert store.get(store.put(data)) == data


def test_pins(store: Store):
    pinned = store.put(payload(1000, seed=13))
    loose = store.put(payload(1001, seed=13), pin=False)
    assert pinned in store.pinned()
    assert loose not in store.pinned()
    store.pin(loose)
    assert loose in store.pinned()
    store.unpin(loose)
    store.unpin(loose)
    assert loose not in store.pinned()
    assert pinned in store.pinned()


def test_oversized_put_is_refused(store: Store, monkeypatch):
    monkeypatch.setattr(store, "max_object_size", 1000)
    with pytest.raises(ObjectTooLargeError, match="1001 bytes"):
        store.put(payload(1001))


@pytest.mark.parametrize("size", [5000, 3 * CHUNK_SIZE])
def test_oversized_get_is_refused(store: Store, monkeypatch, size: int):
    cid = store.put(payload(size, seed=14))
    monkeypatch.setattr(store, "max_object_size", size - 1)
    with pytest.raises(ObjectTooLargeError, match=cid_str(cid)):
        store.get(cid)


@pytest.mark.parametrize("missing", [MISSING, MISSING_TREE], ids=["raw", "dag-pb"])
def test_kubo_missing_cid_fails_within_the_timeout(ipfs_node, missing: str):
    store = KuboStore(ipfs_node.api_url, timeout=1.5, has_timeout=0.5)
    try:
        start = time.monotonic()
        with pytest.raises(StorageError, match=f"{missing} was not found .* within 1.5 s"):
            store.get(missing)
        assert time.monotonic() - start < 5
        start = time.monotonic()
        assert not store.has(missing)
        assert time.monotonic() - start < 3
        with pytest.raises(StorageError, match=missing):
            store.pin(missing)
    finally:
        store.close()


def test_kubo_substituted_content_is_rejected(kubo: KuboStore, monkeypatch):
    cid = kubo.put(b"the real content")
    monkeypatch.setattr(kubo._client, "cat", lambda *a, **k: b"a substitute!!!!")
    with pytest.raises(IntegrityError, match=f"{cid}.*corrupt"):
        kubo.get(cid)


def test_kubo_substituted_tree_is_rejected(kubo: KuboStore, monkeypatch):
    data = payload(3 * CHUNK_SIZE, seed=15)
    cid = kubo.put(data)
    other = payload(CHUNK_SIZE, seed=16)
    real_get = kubo._client.block.get
    monkeypatch.setattr(kubo._client, "cat", lambda *a, **k: other * 3)

    def bad_block(cid_text: str, **kwargs) -> bytes:
        block = real_get(cid_text, **kwargs)
        return other if len(block) == CHUNK_SIZE else block

    monkeypatch.setattr(kubo._client.block, "get", bad_block)
    with pytest.raises(IntegrityError, match="corrupt"):
        kubo.get(cid)


def test_kubo_get_recovers_from_a_bad_cat_by_verifying_blocks(kubo: KuboStore, monkeypatch):
    """A cat reply that does not match is not trusted; the verified block walk is."""
    data = payload(3 * CHUNK_SIZE, seed=17)
    cid = kubo.put(data)
    monkeypatch.setattr(kubo._client, "cat", lambda *a, **k: b"garbage" * 10)
    assert kubo.get(cid) == data


def test_kubo_refuses_a_node_that_returns_another_cid(kubo: KuboStore, monkeypatch):
    monkeypatch.setattr(kubo._client, "add", lambda *a, **k: {"Hash": MISSING})
    with pytest.raises(IntegrityError, match="does not honour"):
        kubo.put(b"some content")


def test_kubo_unreachable_node_gives_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        store = KuboStore(f"http://127.0.0.1:{port}", timeout=2)
        with pytest.raises(StorageError, match="cannot reach the IPFS node"):
            store.put(b"x")
        store.close()
