"""One shared thread pool for hashing and file I/O on large objects.

``hashlib`` and file I/O release the GIL, so a large object's chunks can be hashed, written
and read on every core. Small objects stay on the calling thread: the hundreds of
small-object worker processes in a swarm never even create the pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

PARALLEL_MIN_CHUNKS = 8
"""Below this many 256 KiB chunks, thread hand-off costs more than it saves."""

MapFn = Callable[..., Iterable]
"""``map`` or ``Executor.map``."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def map_for(chunks: int) -> MapFn:
    """``map`` for small objects; the shared pool's ordered ``map`` for large ones."""
    global _pool
    if chunks < PARALLEL_MIN_CHUNKS:
        return map
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="chainml-storage"
            )
    return _pool.map
