"""One shared thread pool for hashing on large objects.

``hashlib`` releases the GIL, so a large object's chunks can be hashed on every core. Small
objects stay on the calling thread: the hundreds of small-object worker processes in a swarm
never even create the pool. Work goes to the pool in a few contiguous batches rather than
one task per 256 KiB chunk, so hand-off costs stay far below the hashing itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PARALLEL_MIN_CHUNKS = 8
"""Below this many 256 KiB chunks, thread hand-off costs more than it saves."""
BATCHES_PER_WORKER = 4
"""Batches per pool thread: enough to even out a core that another process is using."""

MapFn = Callable[..., Iterable]
"""``map`` or an ordered parallel equivalent."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_workers = 1


def _get_pool() -> ThreadPoolExecutor:
    global _pool, _workers
    with _pool_lock:
        if _pool is None:
            _workers = min(4, os.cpu_count() or 1)
            _pool = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix="chainml-storage")
    return _pool


def _reset_after_fork() -> None:
    global _pool, _pool_lock
    _pool = None  # the parent's threads do not exist in the child
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def pool_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """``map(fn, items)`` on the shared pool, in order, in a few contiguous batches."""
    work = list(items)
    pool = _get_pool()
    if _workers <= 1 or len(work) < 2:
        return map(fn, work)
    per = max(1, -(-len(work) // (_workers * BATCHES_PER_WORKER)))
    batches = [work[i : i + per] for i in range(0, len(work), per)]

    def run(batch: list[Any]) -> list[Any]:
        return [fn(item) for item in batch]

    return (result for done in pool.map(run, batches) for result in done)


def map_for(chunks: int) -> MapFn:
    """``map`` for small objects; the shared pool's ordered, batched map for large ones."""
    if chunks < PARALLEL_MIN_CHUNKS:
        return map
    return pool_map
