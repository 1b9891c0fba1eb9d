"""A pool closed before its first job stops its workers and lets its process exit.

``chainml demo`` rerun on a finished run (nothing left to do) hung in CI for 900 s: the pool
started its workers, was closed at once, and the thread that stops workers had never started
(it started with the first job). A worker still starting found its queues' semaphores gone
(``FileNotFoundError`` in ``SemLock._rebuild``); a worker already started waited for work
forever, and the process waited at exit to join it. Each case runs the fixed pool and, as the
run that must hurt, the pool as it was before the fix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXED_DEADLINE_S = 120.0
UNPATCHED_HANG_S = 15.0
"""The fixed pool closes in about 2 s here; the unpatched one never does, so any wait shows it."""


def _close_pool(kind: str, when: str, tmp_path: Path, timeout: float) -> tuple[int | None, str]:
    """Run the victim; return (its exit code, or None if it was still running at ``timeout``,
    and its stdout + stderr). Whatever it started is killed with its session."""
    marker = tmp_path / f"{kind}-{when}.marker"
    marker.write_text("")
    argv = [sys.executable, "-m", "tests.robustness.pool_close_victim", kind, when, str(marker)]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the victim and its workers: our session
        out, _ = proc.communicate(timeout=30)
        return None, out
    finally:  # also when the test itself is interrupted
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.parametrize("when", ["now", "warm"])
def test_a_pool_closed_before_any_job_exits_cleanly(tmp_path, when):
    code, out = _close_pool("chainml", when, tmp_path, FIXED_DEADLINE_S)
    assert code == 0, out
    assert "closed" in out
    assert "Traceback" not in out, out


def test_unpatched_pool_closed_at_once_loses_its_semaphores(tmp_path):
    code, out = _close_pool("unpatched", "now", tmp_path, FIXED_DEADLINE_S)
    assert "FileNotFoundError" in out and "SemLock._rebuild" in out, (code, out)


def test_unpatched_pool_closed_after_warm_up_hangs_its_process(tmp_path):
    code, out = _close_pool("unpatched", "warm", tmp_path, UNPATCHED_HANG_S)
    assert code is None, out  # still waiting to join a worker that waits for work
    assert "closed" in out  # close itself returned: the hang is at exit
