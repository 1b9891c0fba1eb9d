"""A process that builds a pool and closes it before giving it any job.

``python -m tests.robustness.pool_close_victim KIND WHEN MARKER``: KIND ``chainml`` is
LocalPoolExecutor; ``unpatched`` is the same pool as it was before the fix (workers launched at
once, the thread that stops them left to the first job). WHEN ``now`` closes the pool at once,
while its workers are still starting; ``warm`` first waits until both workers have run their
warm-up (each appends one byte to MARKER), as a resumed run with nothing left to do does.
Prints ``closed`` and exits when close returns.
"""

from __future__ import annotations

import functools
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def mark_started(marker: str) -> None:
    with open(marker, "a") as out:
        out.write("x")


def main() -> None:
    kind, when, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    warm_up = functools.partial(mark_started, marker)
    if kind == "chainml":
        from chainml.swarm.executor import LocalPoolExecutor

        pool = LocalPoolExecutor(2, warm_up=warm_up)
        close = pool.close
    else:
        plain = ProcessPoolExecutor(
            max_workers=2,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=warm_up,
        )
        plain._launch_processes()  # type: ignore[attr-defined]
        close = functools.partial(plain.shutdown, wait=True, cancel_futures=True)
    if when == "warm":
        deadline = time.monotonic() + 120
        while len(Path(marker).read_text()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition: both workers have started
    close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
