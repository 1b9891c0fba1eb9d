"""CAR v1 export and import, checked against js-ipfs and an independent CAR reader."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from aleph_cid import compute_cid, read_carv1_root
from multiformats import CID

from chainml.errors import IntegrityError, StorageError
from chainml.storage.car import encode_header, read_car, write_car
from chainml.storage.cid import cid_str, raw_cid_bytes
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.kubo import KuboStore
from chainml.storage.limits import ObjectTooLargeError
from chainml.storage.protobuf import field_bytes, field_varint
from chainml.storage.unixfs import CHUNK_SIZE, build_file
from tests.storage.samples import MIB, payload


@pytest.mark.parametrize("size", [0, 1000, 3 * CHUNK_SIZE + 1])
def test_export_import_between_embedded_stores(tmp_path: Path, size: int):
    data = payload(size, seed=21)
    source = EmbeddedStore(tmp_path / "a")
    cid = source.put(data)
    car = tmp_path / "x.car"
    source.export_car(cid, car)
    assert read_carv1_root(car) == cid_str(cid)  # an independent CAR reader agrees
    target = EmbeddedStore(tmp_path / "b")
    assert target.import_car(car) == [cid]
    assert target.get(cid) == data
    assert target.pinned() == [cid]


@pytest.mark.parametrize("size", [1000, 3 * CHUNK_SIZE + 1, 2 * MIB])
def test_embedded_car_imports_into_js_ipfs_with_the_same_root(
    tmp_path: Path, embedded: EmbeddedStore, kubo: KuboStore, size: int
):
    data = payload(size, seed=22)
    cid = embedded.put(data)
    car = tmp_path / "embedded.car"
    embedded.export_car(cid, car)
    assert kubo.import_car(car) == [cid]
    assert cid in kubo.pinned()
    assert kubo.get(cid) == data
    # js-ipfs writes the very same bytes back: same root, same blocks, same order.
    kubo.export_car(cid, tmp_path / "js.car")
    assert (tmp_path / "js.car").read_bytes() == car.read_bytes()


def test_js_ipfs_car_imports_into_the_embedded_store(
    tmp_path: Path, embedded: EmbeddedStore, kubo: KuboStore
):
    data = payload(5 * CHUNK_SIZE, seed=23)
    cid = kubo.put(data)
    kubo.export_car(cid, tmp_path / "js.car")
    assert embedded.import_car(tmp_path / "js.car") == [cid]
    assert embedded.get(cid) == data


def _car_bytes(data: bytes) -> tuple[bytes, bytes]:
    root, blocks = build_file(data)
    out = io.BytesIO()
    write_car(out, [root], [(c, bytes(b)) for c, b in blocks])
    return root, out.getvalue()


@pytest.mark.parametrize("store_name", ["embedded", "kubo"])
def test_a_corrupt_block_in_a_car_is_refused(tmp_path: Path, request, store_name: str):
    store = request.getfixturevalue(store_name)
    data = payload(2 * CHUNK_SIZE, seed=24)
    _, car = _car_bytes(data)
    damaged = bytearray(car)
    damaged[len(encode_header([b""])) + 100] ^= 0xFF  # inside the first leaf
    path = tmp_path / "bad.car"
    path.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError, match="corrupt"):
        store.import_car(path)


def test_a_truncated_car_is_refused(tmp_path: Path, embedded: EmbeddedStore):
    _, car = _car_bytes(payload(2 * CHUNK_SIZE, seed=25))
    path = tmp_path / "short.car"
    path.write_bytes(car[:-10])
    with pytest.raises(IntegrityError, match="truncated"):
        embedded.import_car(path)


def test_a_car_missing_blocks_cannot_be_pinned(tmp_path: Path, embedded: EmbeddedStore):
    data = payload(2 * CHUNK_SIZE, seed=26)
    root, blocks = build_file(data)
    only_root = [(c, bytes(b)) for c, b in blocks if c == root]
    path = tmp_path / "partial.car"
    with open(path, "wb") as out:
        write_car(out, [root], only_root)
    packs = embedded.root / "packs"
    before = {p.name: p.stat().st_size for p in packs.iterdir()}
    with pytest.raises(IntegrityError, match=r"lacks block .* nothing was imported"):
        embedded.import_car(path)
    assert {p.name: p.stat().st_size for p in packs.iterdir()} == before  # nothing written
    assert not embedded.has(root)


def test_a_car_whose_root_block_is_missing_writes_nothing(tmp_path: Path, embedded: EmbeddedStore):
    data = payload(3 * CHUNK_SIZE, seed=27)
    root, blocks = build_file(data)
    leaves = [(c, bytes(b)) for c, b in blocks if c != root]
    path = tmp_path / "rootless.car"
    with open(path, "wb") as out:
        write_car(out, [root], leaves)
    packs = embedded.root / "packs"
    before = {p.name: p.stat().st_size for p in packs.iterdir()}
    with pytest.raises(IntegrityError, match=r"lacks block bafy\w+ of its root bafy"):
        embedded.import_car(path)
    assert {p.name: p.stat().st_size for p in packs.iterdir()} == before
    assert not any(embedded.has(c) for c, _ in leaves)  # the leaves were not written unpinned


@pytest.mark.parametrize(
    ("content", "error", "needle"),
    [
        (b"", IntegrityError, "truncated"),
        (b"\x05hello", IntegrityError, "not valid CBOR|truncated"),
        (b"\x0a\xa1\x67version\x02", StorageError, "CAR version 2"),
        (b"\x0a\xa1\x67version\x01", IntegrityError, "roots"),
    ],
    ids=["empty", "not-cbor", "carv2", "no-roots"],
)
def test_malformed_car_headers_are_refused(content, error, needle):
    with pytest.raises(error, match=needle):
        read_car(io.BytesIO(content), MIB)


def test_car_import_respects_the_size_limit(tmp_path: Path):
    _, car = _car_bytes(payload(3 * CHUNK_SIZE, seed=27))
    path = tmp_path / "big.car"
    path.write_bytes(car)
    with pytest.raises(ObjectTooLargeError):
        EmbeddedStore(tmp_path / "s", max_object_size=CHUNK_SIZE).import_car(path)


def test_header_encoding_is_canonical_dag_cbor():
    root = raw_cid_bytes(b"hello world\n")
    header = encode_header([root])
    assert header[1:] == (b"\xa2\x65roots\x81\xd8\x2a\x58\x25\x00" + root + b"\x67version\x01")
    assert header[0] == len(header) - 1


def _v0_file(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Kubo's default CIDv0 layout (dag-pb leaves holding data), for ≤174 chunks."""

    def v0(block: bytes) -> bytes:
        return b"\x12\x20" + hashlib.sha256(block).digest()

    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]
    leaves = []
    for chunk in chunks:
        unixfs = field_varint(1, 2) + (field_bytes(2, chunk) if chunk else b"")
        leaves.append(field_bytes(1, unixfs + field_varint(3, len(chunk))))
    if len(leaves) == 1:
        return v0(leaves[0]), [(v0(leaves[0]), leaves[0])]
    links = b"".join(
        field_bytes(2, field_bytes(1, v0(leaf)) + b"\x12\x00" + field_varint(3, len(leaf)))
        for leaf in leaves
    )
    unixfs = field_varint(1, 2) + field_varint(3, len(data))
    unixfs += b"".join(field_varint(4, len(chunk)) for chunk in chunks)
    root = links + field_bytes(1, unixfs)
    return v0(root), [(v0(root), root)] + [(v0(leaf), leaf) for leaf in leaves]


@pytest.mark.parametrize("size", [12, 3 * CHUNK_SIZE + 5])
def test_a_cidv0_dag_from_kubo_imports_and_reads_back(tmp_path: Path, size: int):
    data = payload(size, seed=28)
    root, blocks = _v0_file(data)
    assert str(CID.decode(root)) == compute_cid(data)  # really Kubo's default v0 DAG
    path = tmp_path / "v0.car"
    with open(path, "wb") as out:
        write_car(out, [root], blocks)
    store = EmbeddedStore(tmp_path / "s")
    (imported,) = store.import_car(path)
    assert imported.version == 1 and imported.raw_digest == root[2:]
    assert store.get(imported) == data
