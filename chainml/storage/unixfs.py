"""Kubo-identical UnixFS files: ``ipfs add --cid-version=1 --raw-leaves`` (256 KiB, balanced).

Content up to one chunk is a single raw block. Larger content becomes a balanced tree of
dag-pb nodes, at most 174 links each, whose leaves are the raw chunks; every node carries a
UnixFS ``File`` record with ``filesize`` and ``blocksizes``. Building and reading are both
here so the two can never disagree; reading verifies every block against its CID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chainml.errors import IntegrityError, StorageError
from chainml.storage.cid import (
    DAG_PB,
    RAW,
    canonical_bytes,
    cid_str,
    make_cid_bytes,
    split_cid_bytes,
    verify_block,
)
from chainml.storage.limits import check_object_size
from chainml.storage.parallel import MapFn, map_for
from chainml.storage.protobuf import (
    LEN,
    VARINT,
    field_bytes,
    field_varint,
    iter_fields,
    read_varint,
)

CHUNK_SIZE = 256 * 1024
"""Kubo's default chunker, ``size-262144``."""
MAX_LINKS = 174
"""Kubo's default maximum number of links per balanced-layout node."""
MAX_DEPTH = 8
"""Deeper than any file chainml can store (174**8 chunks); bounds hostile DAGs."""

UNIXFS_RAW = 0
UNIXFS_FILE = 2

Block = tuple[bytes, bytes | memoryview]
"""``(binary CID, block bytes)``."""


@dataclass(frozen=True, slots=True)
class Link:
    """One dag-pb link: the child's CID, its cumulative DAG size and its file bytes."""

    cid: bytes
    tsize: int
    filesize: int


def encode_file_node(links: list[Link]) -> bytes:
    """A dag-pb node as Kubo writes it: links first (empty names), then the UnixFS record."""
    parts = []
    for link in links:
        body = field_bytes(1, link.cid) + b"\x12\x00" + field_varint(3, link.tsize)
        parts.append(field_bytes(2, body))
    unixfs = bytearray(field_varint(1, UNIXFS_FILE))
    unixfs += field_varint(3, sum(link.filesize for link in links))
    for link in links:
        unixfs += field_varint(4, link.filesize)
    parts.append(field_bytes(1, bytes(unixfs)))
    return b"".join(parts)


def build_file(data: bytes | memoryview, *, map_fn: MapFn = map) -> tuple[bytes, Iterator[Block]]:
    """The root CID of ``data`` and an iterator over all its blocks (leaves first, root last).

    Leaves are hashed once up front (the root CID needs them all), through ``map_fn`` so a
    caller can hash on several cores (``hashlib`` releases the GIL); the iterator then slices
    the chunks lazily, so a large file is never copied block by block into memory.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    if size <= CHUNK_SIZE:
        cid = make_cid_bytes(RAW, hashlib.sha256(view).digest())
        return cid, iter(((cid, view),))
    sha256 = hashlib.sha256

    def leaf(start: int) -> Link:
        chunk = view[start : start + CHUNK_SIZE]
        return Link(make_cid_bytes(RAW, sha256(chunk).digest()), len(chunk), len(chunk))

    leaves = list(map_fn(leaf, range(0, size, CHUNK_SIZE)))
    nodes: list[Block] = []
    level = leaves
    while len(level) > 1:
        parents = []
        for i in range(0, len(level), MAX_LINKS):
            group = level[i : i + MAX_LINKS]
            node = encode_file_node(group)
            cid = make_cid_bytes(DAG_PB, sha256(node).digest())
            parents.append(
                Link(cid, len(node) + sum(x.tsize for x in group), sum(x.filesize for x in group))
            )
            nodes.append((cid, node))
        level = parents

    def blocks() -> Iterator[Block]:
        for index, link in enumerate(leaves):
            yield link.cid, view[index * CHUNK_SIZE : index * CHUNK_SIZE + CHUNK_SIZE]
        yield from nodes

    return level[0].cid, blocks()


def file_cid(data: bytes | memoryview) -> bytes:
    """Only the root CID Kubo would give ``data`` (``ipfs add --only-hash``)."""
    root, _ = build_file(data, map_fn=map_for(len(data) // CHUNK_SIZE + 1))
    return root


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded dag-pb UnixFS file node."""

    links: list[bytes]
    blocksizes: list[int]
    filesize: int
    data: bytes


def decode_file_node(cid: bytes, block: bytes | memoryview) -> FileNode:
    """Parse a dag-pb node that must be a UnixFS file (or raw) node."""
    links: list[bytes] = []
    unixfs: bytes | None = None
    try:
        for number, wire, value in iter_fields(block):
            if number == 2 and wire == LEN:
                links.append(_link_hash(value))  # type: ignore[arg-type]
            elif number == 1 and wire == LEN:
                unixfs = value  # type: ignore[assignment]
            else:
                raise IntegrityError(f"unexpected field {number} in dag-pb node")
        if unixfs is None:
            raise IntegrityError("dag-pb node has no UnixFS data")
        kind, filesize, payload, blocksizes = UNIXFS_RAW, None, b"", []
        for number, wire, value in iter_fields(unixfs):
            if number == 1 and wire == VARINT:
                kind = value
            elif number == 2 and wire == LEN:
                payload = value
            elif number == 3 and wire == VARINT:
                filesize = value
            elif number == 4 and wire == VARINT:
                blocksizes.append(value)
            elif number == 4 and wire == LEN:  # packed encoding, legal in proto2 readers
                pos = 0
                while pos < len(value):  # type: ignore[arg-type]
                    size, pos = read_varint(value, pos)  # type: ignore[arg-type]
                    blocksizes.append(size)
    except IntegrityError as exc:
        raise IntegrityError(f"block {cid_str(canonical_bytes(cid))} is malformed: {exc}") from exc
    if kind not in (UNIXFS_RAW, UNIXFS_FILE):
        raise StorageError(
            f"{cid_str(canonical_bytes(cid))} is not a file (UnixFS type {kind}); "
            "chainml stores single files only"
        )
    if len(blocksizes) != len(links):
        raise IntegrityError(
            f"block {cid_str(canonical_bytes(cid))} is malformed: "
            f"{len(links)} links but {len(blocksizes)} block sizes"
        )
    content = len(payload) + sum(blocksizes)
    if filesize is None:
        filesize = content
    if filesize != content:
        raise IntegrityError(
            f"block {cid_str(canonical_bytes(cid))} is malformed: filesize {filesize} "
            f"but its data and children hold {content} bytes"
        )
    return FileNode(links, blocksizes, filesize, payload)  # type: ignore[arg-type]


def _link_hash(body: bytes) -> bytes:
    for number, wire, value in iter_fields(body):
        if number == 1 and wire == LEN:
            split_cid_bytes(value)  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
    raise IntegrityError("dag-pb link without a hash")


GetBlock = Callable[[bytes], bytes | memoryview]


@dataclass(frozen=True, slots=True)
class Leaf:
    """A raw leaf of a file and where its bytes go in the content."""

    cid: bytes
    offset: int
    size: int


def plan_leaves(root: bytes, get_block: GetBlock, max_size: int) -> tuple[int, list[Leaf]] | None:
    """Verify a file's interior nodes and list its raw leaves with their offsets.

    This lets a backend fetch and verify leaves in parallel straight into one buffer.
    Returns ``None`` for DAGs whose interior nodes carry data themselves (CIDv0-era files),
    which must be read with ``iter_file`` instead.
    """
    leaves: list[Leaf] = []
    offset = 0

    def visit(cid: bytes, expected: int | None, depth: int) -> None:
        nonlocal offset
        if depth > MAX_DEPTH:
            raise IntegrityError(f"DAG under {cid_str(canonical_bytes(root))} is too deep")
        if split_cid_bytes(cid)[0] == RAW:
            if expected is None:
                raise _NotPlannable
            leaves.append(Leaf(cid, offset, expected))
            offset += expected
            return
        block = get_block(cid)
        verify_block(cid, block)
        node = decode_file_node(cid, block)
        if node.data or (expected is not None and node.filesize != expected):
            raise _NotPlannable
        check_object_size(offset + node.filesize, max_size, f"object {cid_str(root)}")
        for child, size in zip(node.links, node.blocksizes, strict=True):
            visit(child, size, depth + 1)

    try:
        visit(root, None, 0)
    except _NotPlannable:
        return None
    return offset, leaves


class _NotPlannable(Exception):
    pass


def file_size(root: bytes, get_block: GetBlock) -> int:
    """The content size announced by a file's root (verified), without reading the content."""
    codec, _ = split_cid_bytes(root)
    block = get_block(root)
    verify_block(root, block)
    if codec == RAW:
        return len(block)
    return decode_file_node(root, block).filesize


def iter_file(root: bytes, get_block: GetBlock, max_size: int) -> Iterator[bytes | memoryview]:
    """Stream a file's content, verifying every block against its CID as it is read.

    ``get_block`` only fetches; verification happens here, once, for every backend. The
    announced sizes are checked against the real ones, and reading stops as soon as the
    content would exceed ``max_size``.
    """
    total = 0
    for piece in _walk(root, get_block, 0):
        total += len(piece)
        check_object_size(total, max_size, f"object {cid_str(root)}")
        yield piece


def _walk(cid: bytes, get_block: GetBlock, depth: int) -> Iterator[bytes | memoryview]:
    if depth > MAX_DEPTH:
        raise IntegrityError(f"DAG under {cid_str(canonical_bytes(cid))} is too deep")
    codec, _ = split_cid_bytes(cid)
    block = get_block(cid)
    verify_block(cid, block)
    if codec == RAW:
        yield block
        return
    node = decode_file_node(cid, block)
    if node.data:
        yield node.data
    for child, expected in zip(node.links, node.blocksizes, strict=True):
        got = 0
        for piece in _walk(child, get_block, depth + 1):
            got += len(piece)
            yield piece
        if got != expected:
            raise IntegrityError(
                f"block {cid_str(canonical_bytes(cid))} announces {expected} bytes for child "
                f"{cid_str(canonical_bytes(child))} but it holds {got}"
            )


def iter_dag_cids(root: bytes, get_block: GetBlock) -> Iterator[bytes]:
    """Every CID of a file DAG; only interior nodes are read (and verified), not leaves."""
    stack = [(root, 0)]
    while stack:
        cid, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise IntegrityError(f"DAG under {cid_str(canonical_bytes(root))} is too deep")
        yield cid
        if split_cid_bytes(cid)[0] == DAG_PB:
            block = get_block(cid)
            verify_block(cid, block)
            stack.extend((child, depth + 1) for child in decode_file_node(cid, block).links)


def iter_dag_blocks(root: bytes, get_block: GetBlock) -> Iterator[Block]:
    """Every block of a file DAG, verified, depth-first pre-order (as ``ipfs dag export``)."""
    stack = [(root, 0)]
    while stack:
        cid, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise IntegrityError(f"DAG under {cid_str(canonical_bytes(root))} is too deep")
        block = get_block(cid)
        verify_block(cid, block)
        yield cid, block
        if split_cid_bytes(cid)[0] == DAG_PB:
            node = decode_file_node(cid, block)
            stack.extend((child, depth + 1) for child in reversed(node.links))
