"""Where node work runs: an interface, so a distributed engine can replace the local pool.

The orchestrator only ever calls ``map(fn, jobs)`` with a picklable top-level function and
picklable jobs, and gets results back in job order. A function may declare that its jobs run in
canonical groups (``fn.group_of(job)`` and ``fn.run_group(jobs) -> results``, as
``chainml.swarm.node_job.run_node`` does): every executor then forms the same groups from the
job list and runs each with one call, so results never depend on the executor's chunking.
``LocalPoolExecutor`` runs them in worker processes on this machine; ``RayExecutor`` runs
chunks of them as Ray tasks, on a local Ray instance or an existing cluster; ``InlineExecutor``
runs them in the calling process (tests, tiny fleets, debugging). ``make_executor`` builds one
from ``--executor pool|ray[:ADDRESS]``.

Crash safety: a ``kill -9`` of the orchestrator must leave nothing behind (workers hold memory
and locks on store packs). Pool workers are started with ``spawn``, so each is a direct child of
the orchestrator (no forkserver in between), and each ties its life to it twice: the kernel
sends it SIGKILL when its parent dies (``PR_SET_PDEATHSIG``, Linux), and a watchdog thread
blocked on the parent's sentinel pipe exits the process the moment that pipe closes (any POSIX
system). multiprocessing's resource tracker then sees every writer of its pipe gone and exits
by itself. A local Ray instance's GCS, raylet and workers die with their driver, but its agents
take about a minute to notice, and a worker busy in a task can outlive its raylet, so a small
reaper process kills them at once (``_Reaper``): what was running when the instance came up, then
every process whose command line names the instance's private temporary directory.

Pointing at an existing Ray cluster: ``--executor ray:ADDRESS`` (``ray:auto`` uses
``RAY_ADDRESS`` or the cluster this machine belongs to). Every Ray node needs this venv (chainml
importable) and the same data directory or a shared IPFS API (``--ipfs http://...``), since the
jobs name the store. A token-auth cluster needs ``RAY_AUTH_TOKEN_PATH`` or ``RAY_AUTH_TOKEN`` in
the driver's environment. For a head on this machine's loopback, start it with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the driver sets it itself for loopback addresses).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from chainml.errors import ChainMLError, ConfigError, ServiceError

J = TypeVar("J")
R = TypeVar("R")

EXECUTORS = ("pool", "ray")
PR_SET_PDEATHSIG = 1


class Executor(Protocol):
    """Runs node jobs; results come back in job order."""

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]: ...

    def close(self) -> None: ...


def job_groups(fn: Callable[[J], R], jobs: Sequence[J]) -> list[list[int]] | None:
    """Indices of ``jobs`` in ``fn``'s canonical groups (in order of first appearance), or None
    if ``fn`` does not group its jobs."""
    group_of: Callable[[J], Hashable] | None = getattr(fn, "group_of", None)
    if group_of is None or getattr(fn, "run_group", None) is None:
        return None
    groups: dict[Hashable, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(group_of(job), []).append(i)
    return list(groups.values())


def grouped_map(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    run_groups: Callable[[Callable[[list[J]], list[R]], list[list[J]]], Iterator[list[R]]],
) -> Iterator[R] | None:
    """``fn`` over ``jobs`` through its groups (``run_groups(run_group, groups)`` runs them,
    anywhere), results in job order; None if ``fn`` does not group its jobs."""
    indices = job_groups(fn, jobs)
    if indices is None:
        return None
    run_group: Callable[[list[J]], list[R]] = fn.run_group  # type: ignore[attr-defined]
    groups = [[jobs[i] for i in group] for group in indices]

    def results() -> Iterator[R]:
        ready: dict[int, R] = {}
        order = iter(range(len(jobs)))
        want = next(order, None)
        for group, outcome in zip(indices, run_groups(run_group, groups), strict=True):
            if len(outcome) != len(group):
                raise ServiceError(f"a job group returned {len(outcome)} results, not {len(group)}")
            ready.update(zip(group, outcome, strict=True))
            while want is not None and want in ready:
                yield ready.pop(want)
                want = next(order, None)

    return results()


class InlineExecutor:
    """Runs every job in this process, one after another (or group after group)."""

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        grouped = grouped_map(fn, jobs, lambda run, groups: (run(g) for g in groups))
        if grouped is not None:
            return grouped
        return (fn(job) for job in jobs)

    def close(self) -> None:
        return None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when the thread that started it exits
    (Linux ``prctl``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent() -> None:
    """Exit at once when the parent process dies (its sentinel pipe reaches end of file)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # blocks on the pipe, no polling
        os._exit(1)

    threading.Thread(target=watch, name="chainml-parent-watchdog", daemon=True).start()


def one_thread_per_worker() -> None:
    """One torch and one BLAS thread in this worker, as Ray gives its workers: the pool already
    uses every core, and oversubscription makes small tensor ops much slower. OpenBLAS's idle
    threads spin, so two workers and the parent each running the aggregation rule's products
    on two threads made a 10,000-node round's recomputations several times slower. The
    rules' results do not depend on the thread count (``chainml.aggregate``: exact integer
    arithmetic where sums meet)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


def _init_worker(
    parent_pid: int, pdeathsig: bool, warm_up: Callable[[], None] | None = None
) -> None:
    if pdeathsig:
        set_parent_death_signal()
    _watch_parent()
    if os.getppid() != parent_pid:  # the parent died before the guards were in place
        os._exit(1)
    one_thread_per_worker()
    if warm_up is not None:
        warm_up()  # while the parent registers the fleet and opens the round


class LocalPoolExecutor:
    """A process pool on this machine, kept alive across rounds (workers import torch once).

    Its workers die with the process that created the pool, however it dies (module doc).
    """

    def __init__(
        self,
        workers: int | None = None,
        chunk_size: int = 8,
        warm_up: Callable[[], None] | None = None,
    ) -> None:
        """``warm_up``: a picklable function each worker runs once at start."""
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.chunk_size = chunk_size
        # spawn: workers start from a clean interpreter, never a fork of a process that holds
        # threads (torch, web3 HTTP sessions), and are children of this process.
        context = multiprocessing.get_context("spawn")
        # PR_SET_PDEATHSIG fires when the *thread* that forked the worker exits, so it is set
        # only if every worker is started now, by the main thread (which lives as long as the
        # process); the parent watchdog covers every other case.
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), self._can_start_all_now(), warm_up),
        )
        if self._can_start_all_now():
            pool._launch_processes()  # type: ignore[attr-defined]
            # The thread that stops the workers at shutdown (it sends each one a sentinel
            # and joins it) otherwise starts with the first job. A pool closed before any job
            # (a resumed run with nothing left to do, a failure before round one) would drop
            # its queues under workers still starting, whose spawn then fails on the vanished
            # semaphores, or leave a started worker waiting forever for work while this
            # process waits at exit to join it.
            pool._start_executor_manager_thread()  # type: ignore[attr-defined]
        self._pool = pool

    @staticmethod
    def _can_start_all_now() -> bool:
        return threading.current_thread() is threading.main_thread() and all(
            hasattr(ProcessPoolExecutor, name)
            for name in ("_launch_processes", "_start_executor_manager_thread")
        )

    def worker_pids(self) -> list[int]:
        """The PIDs of the pool's worker processes (for tests and diagnostics)."""
        return sorted(self._pool._processes)  # type: ignore[attr-defined]

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        grouped = grouped_map(fn, jobs, self._map)
        return grouped if grouped is not None else self._map(fn, jobs)

    def _map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        chunk = max(1, min(self.chunk_size, len(jobs) // (self.workers * 4) or 1))
        return self._pool.map(fn, jobs, chunksize=chunk)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------- Ray

RAY_LOOPBACK_ENV = {
    # Ray otherwise rewrites 127.0.0.1 to the host's outward address and binds its gRPC
    # servers to the wildcard address; this keeps every component on 127.0.0.1. It only
    # forbids joining a multi-node cluster, so it is set for local instances only.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
RAY_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def parse_executor(spec: str) -> tuple[str, str | None]:
    """``pool`` -> ("pool", None); ``ray`` -> ("ray", None); ``ray:HOST:PORT`` -> ("ray", ...)."""
    text = spec.strip()
    kind, _, address = text.partition(":")
    kind = kind.lower()
    if kind not in EXECUTORS or (kind == "pool" and address):
        raise ConfigError(
            f"unknown executor {spec!r}: use `pool`, `ray` (a local Ray instance) or "
            "`ray:ADDRESS` (an existing cluster, e.g. ray:127.0.0.1:6379 or ray:auto)"
        )
    return kind, (address or None)


def is_loopback_address(address: str | None) -> bool:
    """Whether a Ray address names this machine's loopback (or is None: a local instance)."""
    if address is None:
        return True
    host = address.removeprefix("ray://").rsplit(":", 1)[0] if ":" in address else address
    return host in _LOOPBACK_HOSTS


_REAPER = r"""
import os, shutil, signal, sys, time
def start(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None
targets = []
for line in sys.stdin:
    if line == "READY\n":
        break
    targets.append(line.split())
sys.stdin.read()  # returns at end of file: the process that started us closed or died
def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
for pid, when in targets:
    if start(int(pid)) == when:
        kill(int(pid))
# Every process whose command line names the instance's private directory: the workers and
# agents started after the snapshot above (a random mkdtemp path, so nothing else matches).
def of_instance(mark):
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    line = f.read()
            except OSError:
                continue
            if mark + b"/" in line or mark + b"\0" in line:
                found.append(int(name))
    return found
if len(sys.argv) > 1:
    mark = os.fsencode(sys.argv[1].rstrip("/"))
    for _ in range(50):  # a few sweeps: a dying raylet may still have forked a worker
        left = of_instance(mark)
        if not left:
            break
        for pid in left:
            kill(pid)
        time.sleep(0.1)
    shutil.rmtree(sys.argv[1], ignore_errors=True)  # the instance's files go with it
"""


def _proc_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _ray_processes(pid: int) -> list[int]:
    """Ray's processes below ``pid`` (not, say, a process pool's workers)."""
    found = []
    for child in _descendants(pid):
        try:
            if b"ray" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


class _Reaper:
    """A tiny process that SIGKILLs the given processes once this process is gone or closes it.

    A local Ray instance's GCS, raylet and workers die with the driver, but its agents take
    about a minute to notice and a worker busy in a task may outlive its raylet; the reaper
    makes a ``kill -9`` of the orchestrator leave nothing. It kills ``pids`` (what ran when it
    started), then every process whose command line names ``temp_dir`` (what started later).
    It runs in its own session, so it outlives the orchestrator just long enough to do that.
    """

    def __init__(self, pids: list[int], temp_dir: Path | None = None) -> None:
        self._proc: subprocess.Popen[str] | None = None
        if not Path("/proc/self/stat").exists():
            return  # not Linux: Ray's own fate-sharing is all there is
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _REAPER, *([str(temp_dir)] if temp_dir else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
        assert self._proc.stdin is not None
        lines = [f"{pid} {start}\n" for pid in pids if (start := _proc_start(pid)) is not None]
        self._proc.stdin.write("".join(lines) + "READY\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()  # the reaper kills what is left, then exits
            self._proc.wait(timeout=30)
            self._proc = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _run_chunk(fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
    """One Ray task: a chunk of jobs, run one after another in the worker."""
    import torch

    torch.set_num_threads(1)  # node steps must give the same bits in any process
    return [fn(job) for job in jobs]


class RayExecutor:
    """Node jobs as Ray tasks, many devices per task (a task costs ~0.1 ms of scheduling, a
    device's round far less than a second: one task per device would be mostly overhead).

    ``address=None`` starts a private local Ray instance on 127.0.0.1 with ``workers`` CPUs
    (its files in a temporary directory, removed on ``close``); an address connects to an
    existing cluster (``ray start --head`` elsewhere, or ``auto``).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int = 2,
        chunk_size: int | None = None,
        tasks_per_worker: int = 4,
        warm_up: str | None = None,
    ) -> None:
        """``warm_up``: the dotted name of a function every Ray worker runs as it starts."""
        self.address = address
        self.chunk_size = chunk_size
        self.tasks_per_worker = tasks_per_worker
        self._temp_dir: Path | None = None
        # Ray reads these from this process's environment (and passes them to what it starts);
        # ``close`` puts the previous values back.
        env = {k: os.environ.get(k, v) for k, v in RAY_QUIET_ENV.items()}
        if is_loopback_address(address):
            env |= RAY_LOOPBACK_ENV
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": "WARNING",
            "log_to_driver": False,
            "configure_logging": True,
        }
        if warm_up is not None:
            kwargs["runtime_env"] = {"worker_process_setup_hook": warm_up}
        if address is None:
            # A short path: Ray puts Unix sockets under it (108-byte limit).
            self._temp_dir = Path(tempfile.mkdtemp(prefix="chainml-ray-"))
            token = self._temp_dir / "auth_token"  # token auth, the token kept out of ~/.ray
            token.write_text(secrets.token_hex(32))
            token.chmod(0o600)
            env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
            kwargs |= {
                "num_cpus": max(1, workers),
                "object_store_memory": 200_000_000,
                "_temp_dir": str(self._temp_dir),
                "_node_ip_address": "127.0.0.1",
            }
        else:
            kwargs["address"] = address
        self._saved_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # before Ray is imported: it reads some of them at import
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dependency
            self._restore()
            raise ConfigError("the Ray executor needs the `ray` package: pip install ray") from exc
        self._ray = ray
        try:
            self._context = ray.init(**kwargs)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
            self._restore()
            where = address or "a local instance"
            raise ServiceError(f"cannot start or reach Ray ({where}): {_first_line(exc)}") from exc
        # What a local instance started (GCS, raylet, agents) must die with this process.
        self._reaper = (
            _Reaper(_ray_processes(os.getpid()), self._temp_dir) if address is None else None
        )
        self._task = ray.remote(num_cpus=1, max_retries=0)(_run_chunk)
        self._fns: dict[Callable[..., Any], Any] = {}

    @property
    def cpus(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def chunks_for(self, count: int) -> int:
        """How many jobs one task runs: a few tasks per CPU, never one task per device."""
        if self.chunk_size is not None:
            return max(1, self.chunk_size)
        return max(1, math.ceil(count / (self.cpus * self.tasks_per_worker)))

    def map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        grouped = grouped_map(fn, jobs, self._map)
        return grouped if grouped is not None else self._map(fn, jobs)

    def _map(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[R]:
        jobs = list(jobs)
        if not jobs:
            return iter(())
        ray = self._ray
        fn_ref = self._fns.get(fn)
        if fn_ref is None:
            fn_ref = self._fns[fn] = ray.put(fn)
        size = self.chunks_for(len(jobs))
        refs = [self._task.remote(fn_ref, jobs[i : i + size]) for i in range(0, len(jobs), size)]

        def results() -> Iterator[R]:
            for ref in refs:  # in job order; later chunks run meanwhile
                try:
                    chunk = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, ChainMLError):
                        raise cause from exc  # e.g. the store went away: the job's own error
                    raise ServiceError(f"a Ray task failed: {_first_line(cause or exc)}") from exc
                except ray.exceptions.RayError as exc:
                    raise ServiceError(f"Ray failed: {_first_line(exc)}") from exc
                yield from chunk

        return results()

    def close(self) -> None:
        try:
            self._ray.shutdown()
        finally:
            self._fns.clear()
            if self._reaper is not None:
                self._reaper.close()
            self._restore()

    def _restore(self) -> None:
        """Put this process's environment back and remove the local instance's files."""
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def make_executor(
    workers: int, spec: str = "pool", warm_up: Callable[[], None] | None = None
) -> Executor:
    """``pool``: ``workers <= 1`` runs inline, more starts a local process pool. ``ray`` starts
    a local Ray instance with ``workers`` CPUs; ``ray:ADDRESS`` uses an existing cluster.
    ``warm_up`` (a top-level function) runs once in every worker as it starts."""
    kind, address = parse_executor(spec)
    if kind == "ray":
        hook = f"{warm_up.__module__}.{warm_up.__qualname__}" if warm_up is not None else None
        return RayExecutor(address, workers=max(1, workers), warm_up=hook)
    return InlineExecutor() if workers <= 1 else LocalPoolExecutor(workers, warm_up=warm_up)
