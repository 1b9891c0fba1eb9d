"""kill -9 of the orchestrator leaves no process behind: no pool worker, no forkserver, no
resource tracker (each held memory and locks on store packs).

Processes are tracked two ways: the PIDs (with start times) of the victim's process tree just
before the kill, and the victim's session (it runs with ``start_new_session=True``), so an
orphan that init adopted is still found. Both must empty out within a deadline (polled). The
same check run against the executor before the fix (a plain forkserver pool) finds its orphans:
that run shows the check bites.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.services.chain import LocalChain
from chainml.swarm.executor import _Reaper
from tests.robustness import procs

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 20.0


def _spawn(
    argv: list[str], cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _kill_and_collect(
    victim: subprocess.Popen[bytes], deadline: float = DEADLINE_S
) -> tuple[list[procs.Proc], list[procs.Proc]]:
    """SIGKILL ``victim``; return (its tree before the kill, what of it and its session is left
    once the deadline passes or everything is gone)."""
    tree = procs.descendants(victim.pid)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)

    def survivors() -> list[procs.Proc]:
        found = {p.pid: p for p in procs.alive(tree)}
        found.update({p.pid: p for p in procs.in_session(victim.pid)})
        return list(found.values())

    with contextlib.suppress(AssertionError):  # what is left is the caller's to judge
        procs.wait_for(lambda: not survivors(), deadline, "the killed process's children")
    return tree, survivors()


def _reap(leftovers: list[procs.Proc]) -> None:
    """Kill what a run left (we started these processes; by PID, after checking start time)."""
    for proc in procs.alive(leftovers):
        os.kill(proc.pid, signal.SIGKILL)
    procs.wait_for(lambda: not procs.alive(leftovers), DEADLINE_S, "leftovers to die")


def _victim(kind: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    marker = tmp_path / f"{kind}.marker"
    marker.write_text("")
    victim = _spawn([sys.executable, "-m", "tests.robustness.pool_victim", kind, str(marker)])
    procs.wait_for(
        lambda: len(marker.read_text()) >= 2 or victim.poll() is not None,
        120,
        "both pool workers to start their jobs",
    )
    assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
    return victim, marker


def test_plain_forkserver_pool_leaves_orphans(tmp_path):
    """The executor before the fix: the check must find the forkserver, tracker and workers."""
    victim, _ = _victim("plain", tmp_path)
    # 5 s is fifty times what the fixed pool's workers take to go (about 0.1 s)
    _, left = _kill_and_collect(victim, deadline=5.0)
    try:
        commands = " ".join(p.cmdline for p in left)
        assert len(left) >= 3, left
        assert "multiprocessing.forkserver" in commands
        assert "multiprocessing.resource_tracker" in commands
    finally:
        _reap(left)


@pytest.mark.parametrize("kind", ["chainml", "chainml-thread"])
def test_local_pool_workers_die_with_their_parent(tmp_path, kind):
    """Also when the pool lives off the main thread, where only the parent watchdog guards."""
    victim, _ = _victim(kind, tmp_path)
    tree, left = _kill_and_collect(victim)
    _reap(left)
    workers = [p for p in tree if "multiprocessing.spawn" in p.cmdline]
    assert len(workers) == 2, tree  # the run really had workers to leave behind
    assert not any("forkserver" in p.cmdline for p in tree)
    assert left == []


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    data_dir = tmp_path / "data"
    local = LocalChain(data_dir)
    info = local.up()
    try:
        yield data_dir, info.url
    finally:
        local.down()


WORKER_MARK = {"pool": "multiprocessing.spawn", "ray": "ray::"}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_kill_9_of_a_swarm_run_mid_round_leaves_no_process(chain, tmp_path, executor):
    data_dir, rpc_url = chain
    run_dir = tmp_path / "run"
    argv = [
        sys.executable, "-m", "chainml", "--data-dir", str(data_dir), "swarm", "run",
        "--nodes", "8", "--rounds", "3", "--workers", "2", "--rpc-url", rpc_url,
        "--run-dir", str(run_dir), "--executor", executor,
    ]  # fmt: skip
    env = {**os.environ, "CHAINML_IPFS": "embedded"}
    victim = _spawn(argv, env=env)
    mark = WORKER_MARK[executor]

    def mid_round() -> bool:
        if victim.poll() is not None:
            return True
        workers = [p for p in procs.descendants(victim.pid) if mark in p.cmdline]
        return len(workers) >= 2 and (run_dir / "opened.jsonl").exists()

    procs.wait_for(mid_round, 180, "the swarm to open a round with its workers running")
    assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
    rounds = run_dir / "rounds.jsonl"
    assert not rounds.exists() or len(rounds.read_text().splitlines()) < 3  # not finished
    tree, left = _kill_and_collect(victim)
    _reap(left)
    assert sum(mark in p.cmdline for p in tree) >= 2, tree
    assert left == [], [(p.pid, p.cmdline[:100]) for p in left]


def _sleeper(*args: str) -> subprocess.Popen[bytes]:
    """A process of ours whose command line carries ``args`` (as a Ray worker's names its
    instance's temporary directory)."""
    return _spawn([sys.executable, "-c", "import time; time.sleep(600)", *args])


def test_the_ray_reaper_kills_late_workers_that_name_its_instance_directory(tmp_path):
    """A worker that starts after the reaper's snapshot (a Ray task's worker) dies with the
    driver because its command line names the instance's directory; a process that does not
    name it, or names a longer directory that merely starts with it, is left alone."""
    instance = tmp_path / "chainml-ray-abc"
    instance.mkdir()
    reaper = _Reaper([], instance)
    late = _sleeper(f"--temp-dir={instance}")
    inside = _sleeper(f"--session-dir={instance}/session_1")
    unrelated = _sleeper(f"--temp-dir={instance}x")
    try:
        procs.wait_for(lambda: all(procs.read_proc(p.pid) for p in (late, inside)), 30, "sleepers")
        reaper.close()  # what a driver's death does: the reaper's stdin reaches end of file
        assert late.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        assert inside.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        assert unrelated.poll() is None
        assert not instance.exists()
    finally:
        for proc in (late, inside, unrelated):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=DEADLINE_S)


def test_without_the_directory_sweep_a_late_worker_outlives_the_reaper(tmp_path):
    """The reaper before the fix (its PID snapshot only): the late worker survives."""
    instance = tmp_path / "chainml-ray-abc"
    instance.mkdir()
    reaper = _Reaper([])  # no directory: the snapshot is all it kills
    late = _sleeper(f"--temp-dir={instance}")
    try:
        reaper.close()
        assert late.poll() is None
    finally:
        late.kill()
        late.wait(timeout=DEADLINE_S)
