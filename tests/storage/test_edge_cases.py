"""Storage edge cases from the robustness issue: hostile CAR headers, CARs with missing blocks,
torn large records, and re-adding content that is already stored. Plus a Hypothesis fuzz of the
CAR reader (deep nesting, huge numbers, random bytes, mutated real CARs).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainml.errors import IntegrityError, StorageError
from chainml.storage.blockstore import HEAD_SIZE, PACKS_DIR
from chainml.storage.car import MAX_HEADER_DEPTH, encode_header, read_car, write_car
from chainml.storage.cid import cid_str
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.protobuf import varint
from chainml.storage.unixfs import CHUNK_SIZE, build_file
from tests.storage.samples import MIB, payload

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # seeded: the same examples on every run
    database=None,  # and nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pack_bytes(root: Path) -> dict[str, int]:
    packs = root / PACKS_DIR
    return {p.name: p.stat().st_size for p in packs.iterdir()} if packs.exists() else {}


def car_bytes(header_body: bytes, blocks: bytes = b"") -> bytes:
    return varint(len(header_body)) + header_body + blocks


# ----------------------------------------------------------------------------- CAR headers


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes((major << 5 | value,))
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes((major << 5 | extra,)) + value.to_bytes(width, "big")
    raise ValueError(value)


def test_a_deeply_nested_header_is_a_clear_error_not_a_recursion_error():
    body = b"\x81" * 1_200 + b"\xa0"  # 1,200 nested one-item arrays around an empty map
    with pytest.raises(
        IntegrityError, match=rf"not valid CBOR: nested deeper than {MAX_HEADER_DEPTH}"
    ):
        read_car(io.BytesIO(car_bytes(body)), MIB)
    tagged = b"\xd8\x2a" * 600 + b"\x40"  # 600 nested tags: the same stack, another way
    with pytest.raises(IntegrityError, match="nested deeper"):
        read_car(io.BytesIO(car_bytes(tagged)), MIB)


@pytest.mark.parametrize(
    "body",
    [
        b"\x9b" + (2**64 - 1).to_bytes(8, "big"),  # an array of 2^64 - 1 items
        b"\xbb" + (2**63).to_bytes(8, "big"),  # a map of 2^63 entries
        b"\x5b" + (2**63).to_bytes(8, "big") + b"x",  # a byte string of 2^63 bytes
        b"\x7b" + (2**64 - 1).to_bytes(8, "big"),  # a text string, length without bytes
        b"\x1b\x00\x00",  # an 8-byte integer cut after two bytes
    ],
    ids=["array-2^64", "map-2^63", "bytes-2^63", "text-2^64", "truncated-int"],
)
def test_huge_or_truncated_numbers_in_the_header_fail_fast(body):
    with pytest.raises(IntegrityError, match="CAR header"):
        read_car(io.BytesIO(car_bytes(body)), MIB)


def test_a_block_length_prefix_beyond_the_limit_is_refused_before_reading():
    root = build_file(b"x")[0]
    huge = varint(2**62)  # a block "of 4 EiB", followed by nothing
    with pytest.raises(StorageError, match="CAR content"):
        _, blocks = read_car(io.BytesIO(encode_header([root]) + huge), MIB)
        list(blocks)


# ----------------------------------------------------------------------------- import


def test_reimporting_a_car_appends_nothing(tmp_path: Path):
    source = EmbeddedStore(tmp_path / "a")
    data = payload(3 * CHUNK_SIZE + 5, seed=3)
    cid = source.put(data)
    car = tmp_path / "x.car"
    source.export_car(cid, car)
    target = EmbeddedStore(tmp_path / "b")
    assert target.import_car(car) == [cid]
    after_first = pack_bytes(target.root)
    assert target.import_car(car) == [cid]
    assert pack_bytes(target.root) == after_first
    assert target.get(cid) == data


# ----------------------------------------------------------------------------- re-adding


@pytest.mark.parametrize("size", [100, 3 * CHUNK_SIZE + 1])
def test_re_adding_stored_content_appends_nothing(tmp_path: Path, size: int):
    store = EmbeddedStore(tmp_path)
    data = payload(size, seed=size)
    cid = store.put(data)
    before = pack_bytes(tmp_path)
    for _ in range(3):
        assert store.put(data) == cid
        assert EmbeddedStore(tmp_path).put(data) == cid  # another process's handle, too
    assert pack_bytes(tmp_path) == before
    assert store.blocks.pins() == [bytes(cid)] or store.pinned() == [cid]


def test_re_adding_unpinned_content_with_a_pin_logs_only_the_pin(tmp_path: Path):
    store = EmbeddedStore(tmp_path)
    data = payload(2 * CHUNK_SIZE, seed=5)
    cid = store.put(data, pin=False)
    before = sum(pack_bytes(tmp_path).values())
    assert store.put(data) == cid  # pin=True by default
    assert sum(pack_bytes(tmp_path).values()) == before + HEAD_SIZE  # one PIN record
    assert store.pinned() == [cid]
    store.pin(cid)  # already pinned: nothing more
    assert sum(pack_bytes(tmp_path).values()) == before + HEAD_SIZE


# ----------------------------------------------------------------------------- torn records


TORN_SIZE = 24 * MIB
"""Large enough that the writer reserves (fallocates) well past its default 8 MiB."""


def _put_large_then_die(root: str, size: int) -> None:
    """Put ``size`` bytes, killed by SIGKILL halfway through the record's write."""
    store = EmbeddedStore(root)
    store.put(b"put before the crash")

    def dying_writev(fd: int, buffers) -> int:
        joined = b"".join(bytes(b) for b in buffers)
        os.write(fd, joined[: len(joined) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
        return 0  # never reached

    os.writev = dying_writev
    store.put(payload(size, seed=9))


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def _torn_store(root: Path) -> tuple[Path, int]:
    process = multiprocessing.get_context("spawn").Process(
        target=_put_large_then_die, args=(str(root), TORN_SIZE)
    )
    process.start()
    process.join(120)
    assert process.exitcode == -signal.SIGKILL
    (pack,) = (root / PACKS_DIR).glob("*.pack")
    return pack, 2 * HEAD_SIZE + len(b"put before the crash")


def test_a_torn_large_record_holds_its_space_until_reclaimed(tmp_path: Path):
    """What the writer's death leaves: half the record on disk plus the whole reservation."""
    pack, good_end = _torn_store(tmp_path / "store")
    assert pack.stat().st_size > good_end + TORN_SIZE // 4
    assert _allocated(pack) >= TORN_SIZE


def test_a_torn_large_record_releases_its_space_at_once_on_open(tmp_path: Path):
    root = tmp_path / "store"
    pack, good_end = _torn_store(root)
    store = EmbeddedStore(root)  # opening (a read-only look) reclaims it; no write needed
    assert pack.stat().st_size == good_end
    assert _allocated(pack) < MIB
    assert [store.get(c) for c in store.pinned()] == [b"put before the crash"]


def test_a_reader_open_before_the_crash_reclaims_on_its_next_look(tmp_path: Path):
    root = tmp_path / "store"
    reader = EmbeddedStore(root)
    pack, good_end = _torn_store(root)
    assert len(reader.pinned()) == 1  # any refresh: here, listing the pins
    assert pack.stat().st_size == good_end
    assert _allocated(pack) < MIB


def test_a_live_writers_reservation_is_not_taken_from_it(tmp_path: Path):
    writer = EmbeddedStore(tmp_path)
    writer.put(b"a first small object")
    (pack,) = (tmp_path / PACKS_DIR).glob("*.pack")
    reserved = _allocated(pack)
    assert reserved > MIB  # the writer's 8 MiB preallocation
    assert EmbeddedStore(tmp_path).pinned()  # another handle looks at the pack
    assert _allocated(pack) == reserved
    second = writer.put(b"a second small object")
    assert EmbeddedStore(tmp_path).get(second) == b"a second small object"


# ----------------------------------------------------------------------------- fuzzing


def _cbor(value: object) -> bytes:
    """A small CBOR encoder for the fuzzer's values (ints, bytes, text, lists, dicts, tags)."""
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _cbor_head(4, len(value)) + b"".join(_cbor(v) for v in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())
    if isinstance(value, tuple):  # (tag, item)
        return _cbor_head(6, value[0]) + _cbor(value[1])
    raise TypeError(value)


HUGE = st.integers(min_value=0, max_value=2**64 - 1)
TEXT = st.sampled_from(["", "k", "roots", "version", "\u00e9\u2603", "x" * 30])  # no charmap
leaves = st.one_of(
    HUGE,
    st.integers(min_value=-(2**64), max_value=-1),
    st.binary(max_size=40),
    TEXT,
    st.booleans(),
    st.none(),
)
cbor_values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(TEXT, inner, max_size=4),
        st.tuples(st.sampled_from([42, 0, 2**32]), inner),
    ),
    max_leaves=30,
)
nesting = st.integers(min_value=0, max_value=3_000)


def _must_be_clean(data: bytes) -> None:
    """Reading ``data`` as a CAR either works or raises a StorageError: nothing else."""
    try:
        _, blocks = read_car(io.BytesIO(data), MIB)
        for _ in blocks:
            pass
    except StorageError:
        pass


@FUZZ
@given(value=cbor_values, depth=nesting, opener=st.sampled_from([b"\x81", b"\xa1\x61k", b"\xc1"]))
def test_fuzz_structured_headers(value, depth, opener):
    _must_be_clean(car_bytes(opener * depth + _cbor(value)))
    _must_be_clean(car_bytes(_cbor({"roots": value, "version": 1})))


@FUZZ
@given(data=st.binary(max_size=2_000))
def test_fuzz_random_bytes(data):
    _must_be_clean(data)
    _must_be_clean(encode_header([build_file(b"r")[0]]) + data)


def _sample_car() -> bytes:
    """A real export: a two-leaf file DAG (root first, as ``ipfs dag export`` writes it)."""
    with tempfile.TemporaryDirectory(prefix="chainml-car-") as tmp:
        store = EmbeddedStore(Path(tmp) / "store")
        cid = store.put(payload(CHUNK_SIZE + 700, seed=11))
        store.export_car(cid, Path(tmp) / "sample.car")
        store.close()
        return (Path(tmp) / "sample.car").read_bytes()


SAMPLE_CAR = _sample_car()


@settings(FUZZ, max_examples=60)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(SAMPLE_CAR) - 1),
            st.sampled_from(["flip", "cut", "insert", "huge-varint"]),
            st.integers(min_value=0, max_value=255),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_mutated_cars_import_cleanly_or_write_nothing(edits):
    data = bytearray(SAMPLE_CAR)
    for at, kind, byte in edits:
        at = min(at, len(data) - 1)
        if kind == "flip":
            data[at] ^= byte or 1
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes([byte])
        else:
            data[at:at] = b"\xff" * 9 + b"\x01"
        if not data:
            break
    with tempfile.TemporaryDirectory(prefix="chainml-fuzz-") as tmp:
        car = Path(tmp) / "mutated.car"
        car.write_bytes(bytes(data))
        store = EmbeddedStore(Path(tmp) / "store")
        try:
            roots = store.import_car(car)
        except StorageError:
            assert sum(pack_bytes(store.root).values()) == 0, "a refused CAR wrote something"
        else:
            for root in roots:  # whatever was accepted is complete and verifies
                assert store.get(root) is not None, cid_str(root)
        finally:
            store.close()


def test_a_rootless_car_sends_nothing_to_an_ipfs_node(tmp_path: Path, kubo):
    data = payload(2 * CHUNK_SIZE + 9, seed=28)
    root, blocks = build_file(data)
    leaves = [(c, bytes(b)) for c, b in blocks if c != root]
    path = tmp_path / "rootless.car"
    with open(path, "wb") as out:
        write_car(out, [root], leaves)
    with pytest.raises(IntegrityError, match=r"lacks block bafy\w+ of its root .* nothing was"):
        kubo.import_car(path)
    assert not any(kubo.has(c) for c, _ in leaves)  # the leaves never reached the node
