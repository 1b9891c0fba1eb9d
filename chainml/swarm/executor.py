"""Where node work runs: an interface, so a distributed engine can replace the local pool.

The orchestrator only ever calls ``map(fn, jobs)`` with a picklable top-level function and
picklable jobs, and gets results back in job order. ``LocalPoolExecutor`` runs them in worker
processes on this machine; ``InlineExecutor`` runs them in the calling process (tests, tiny
fleets, debugging).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

J = TypeVar("J")
R = TypeVar("R")


class Executor(Protocol):
    """Runs node jobs; results come back in job order."""

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs every job in this process, one after another."""

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        return (fn(job) for job in jobs)

    def close(self) -> None:
        return None


def _init_worker() -> None:
    # One torch thread per worker: the pool already uses every core, and oversubscription
    # makes small tensor ops much slower.
    import torch

    torch.set_num_threads(1)


class LocalPoolExecutor:
    """A process pool on this machine, kept alive across rounds (workers import torch once)."""

    def __init__(self, workers: int | None = None, chunk_size: int = 8) -> None:
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.chunk_size = chunk_size
        # forkserver: workers start from a clean process, never a fork of one that holds
        # threads (torch, web3 HTTP sessions), which can deadlock.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["chainml.swarm.node_job"])
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_init_worker
        )

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        chunk = max(1, min(self.chunk_size, len(jobs) // (self.workers * 4) or 1))
        return self._pool.map(fn, jobs, chunksize=chunk)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(workers: int) -> Executor:
    """``workers <= 1`` runs inline; more starts a local process pool."""
    return InlineExecutor() if workers <= 1 else LocalPoolExecutor(workers)
