"""A process that keeps a pool busy until it is killed.

``python -m tests.robustness.pool_victim KIND MARKER``: each of two workers appends one byte to
MARKER when it starts its job, then holds that job for an hour, so two bytes in MARKER mean both
workers are alive and busy. KIND ``plain`` is the executor before the crash-safety fix (a
forkserver pool whose workers know nothing of their parent); ``chainml`` is LocalPoolExecutor;
``chainml-thread`` is LocalPoolExecutor built and used off the main thread.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def busy(marker: str) -> None:
    with open(marker, "a") as out:
        out.write("x")
    time.sleep(3600)  # the job itself, not synchronisation: it lasts until it is killed


def main() -> None:
    kind, marker = sys.argv[1], sys.argv[2]
    if kind == "plain":
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
            list(pool.map(busy, [marker, marker]))
    elif kind == "chainml":
        from chainml.swarm.executor import LocalPoolExecutor

        executor = LocalPoolExecutor(2)
        list(executor.map(busy, [marker, marker]))
    else:  # "chainml-thread": built and used off the main thread, so only the watchdog guards
        import threading

        from chainml.swarm.executor import LocalPoolExecutor

        def use() -> None:
            executor = LocalPoolExecutor(2)
            list(executor.map(busy, [marker, marker]))

        thread = threading.Thread(target=use)
        thread.start()
        thread.join()


if __name__ == "__main__":
    main()
