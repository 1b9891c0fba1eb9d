"""CIDs: Kubo-identical for every size, and the on-chain form the contracts store."""

from __future__ import annotations

import hashlib
import io
import warnings

import pytest
from aleph_cid import CidHasher
from multiformats import CID

from chainml.services.ipfs import IpfsInfo
from chainml.storage.cid import (
    DAG_PB,
    RAW,
    InvalidCIDError,
    cid_from_bytes,
    cid_from_onchain,
    cid_str,
    cid_to_onchain,
    onchain_to_str,
    str_to_onchain,
    to_cid,
)
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.unixfs import CHUNK_SIZE, MAX_LINKS, decode_file_node, file_cid
from tests.storage.samples import KUBO_REFERENCE, MIB, RANDOM_SIZES, REQUIRED_SIZES, payload

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ipfshttpclient


def aleph(data: bytes) -> str:
    hasher = CidHasher.for_ipfs_v1_raw_leaves()
    hasher.update(data)
    return hasher.finalize()


def js_ipfs_add(api_url: str, data: bytes) -> str:
    """The CID js-ipfs computes itself (only-hash: nothing is stored), in base32."""
    host, port = api_url.removeprefix("http://").rsplit(":", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = ipfshttpclient.Client(f"/ip4/{host}/tcp/{port}/http", timeout=60)
    try:
        reply = client.add(
            io.BytesIO(data),
            cid_version=1,
            raw_leaves=True,
            chunker=f"size-{CHUNK_SIZE}",
            only_hash=True,
        )
    finally:
        client.close()
    return cid_str(CID.decode(reply["Hash"]))


@pytest.mark.parametrize("content", list(KUBO_REFERENCE), ids=lambda c: f"{len(c)}B")
def test_embedded_store_matches_kubo_reference_cids(content: bytes, embedded: EmbeddedStore):
    assert cid_str(embedded.put(content)) == KUBO_REFERENCE[content]


@pytest.mark.parametrize("size", [*REQUIRED_SIZES, 10 * MIB, *RANDOM_SIZES])
def test_embedded_store_matches_aleph_cid(size: int, embedded: EmbeddedStore):
    data = payload(size)
    assert cid_str(embedded.put(data)) == aleph(data)


@pytest.mark.parametrize("size", [*REQUIRED_SIZES, *RANDOM_SIZES])
def test_embedded_store_matches_js_ipfs(size: int, embedded: EmbeddedStore, ipfs_node: IpfsInfo):
    data = payload(size, seed=1)
    assert cid_str(embedded.put(data)) == js_ipfs_add(ipfs_node.api_url, data)


@pytest.mark.slow
def test_ten_mib_matches_js_ipfs(embedded: EmbeddedStore, ipfs_node: IpfsInfo):
    data = payload(10 * MIB, seed=2)
    assert cid_str(embedded.put(data)) == js_ipfs_add(ipfs_node.api_url, data)


@pytest.mark.slow
@pytest.mark.parametrize(
    "size",
    [MAX_LINKS * CHUNK_SIZE, MAX_LINKS * CHUNK_SIZE + 1, 50 * MIB],
    ids=["174-chunks", "175-chunks", "50MiB"],
)
def test_multi_level_tree_matches_aleph_and_js_ipfs(size: int, ipfs_node: IpfsInfo):
    data = payload(size, seed=3)
    root = file_cid(data)
    assert cid_str(root) == aleph(data) == js_ipfs_add(ipfs_node.api_url, data)


def test_tree_shape_follows_the_balanced_layout():
    """174 chunks fit one node; the 175th forces a second level with two children."""
    from chainml.storage.unixfs import build_file

    def root_links(size: int) -> int:
        root, blocks = build_file(memoryview(bytes(size)))
        block = dict((cid, bytes(b)) for cid, b in blocks if cid == root)[root]
        return len(decode_file_node(root, block).links)

    assert root_links(MAX_LINKS * CHUNK_SIZE) == MAX_LINKS
    assert root_links(MAX_LINKS * CHUNK_SIZE + 1) == 2


def test_single_chunk_is_a_raw_block_whose_digest_is_the_content_hash():
    data = payload(CHUNK_SIZE)
    digest, codec = cid_to_onchain(file_cid(data))
    assert (digest, codec) == (hashlib.sha256(data).digest(), RAW)


def test_larger_content_has_a_dag_pb_root():
    digest, codec = cid_to_onchain(file_cid(payload(CHUNK_SIZE + 1)))
    assert codec == DAG_PB
    assert len(digest) == 32


@pytest.mark.parametrize("content", list(KUBO_REFERENCE), ids=lambda c: f"{len(c)}B")
def test_onchain_form_round_trips_to_the_full_cid(content: bytes):
    text = KUBO_REFERENCE[content]
    digest, codec = cid_to_onchain(text)
    assert isinstance(digest, bytes) and len(digest) == 32
    assert codec in (0x55, 0x70)
    assert cid_str(cid_from_onchain(digest, codec)) == text
    assert cid_from_onchain("0x" + digest.hex(), codec) == to_cid(text)
    assert onchain_to_str(digest, codec) == text
    assert str_to_onchain(text) == (digest, codec)


def test_onchain_form_of_a_raw_cid_is_sha256_and_0x55():
    assert cid_to_onchain("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4") == (
        hashlib.sha256(b"hello world\n").digest(),
        0x55,
    )


def test_cids_in_other_bases_are_accepted_and_shown_in_base32():
    base58 = "zb2rhi36Gc9GJWijLEL6zW45MBux5FcFv5gJmjXA7VAMozEXY"  # js-ipfs's answer
    assert cid_str(base58) == KUBO_REFERENCE[b"hello world\n"]
    assert str(to_cid(base58)) == KUBO_REFERENCE[b"hello world\n"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", "not version 1"),
        (str(CID("base32", 1, "dag-cbor", ("sha2-256", bytes(32)))), "raw or dag-pb"),
        (str(CID("base32", 1, "raw", ("sha2-512", bytes(64)))), "sha2-256"),
        ("not-a-cid", "not a valid CID"),
        ("", "not a valid CID"),
    ],
    ids=["v0", "dag-cbor", "sha2-512", "garbage", "empty"],
)
def test_unsupported_cids_are_rejected_clearly(value: str, needle: str):
    with pytest.raises(InvalidCIDError, match=needle):
        cid_to_onchain(value)


@pytest.mark.parametrize(
    ("digest", "codec", "needle"),
    [
        (bytes(31), RAW, "32 bytes"),
        (bytes(32), 0x71, "not raw"),
        ("0xzz", RAW, "not hex"),
    ],
)
def test_bad_onchain_values_are_rejected(digest, codec, needle):
    with pytest.raises(InvalidCIDError, match=needle):
        cid_from_onchain(digest, codec)


@pytest.mark.parametrize("codec", ["raw", "dag-pb"])
def test_fast_cid_construction_equals_the_public_constructor(codec: str):
    digest = hashlib.sha256(codec.encode()).digest()
    public = CID("base32", 1, codec, ("sha2-256", digest))
    fast = cid_from_bytes(bytes(public))
    assert fast == public
    assert str(fast) == str(public) == cid_str(public)
    assert bytes(fast) == bytes(public)
