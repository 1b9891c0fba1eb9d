"""Process-tree and listening-socket helpers for the robustness tests (Linux ``/proc`` and ``ss``).

Tests track what a command started by its session id (the command runs with
``start_new_session=True``, and descendants keep the session unless they call ``setsid``) and
by the PIDs seen in its process tree while it ran, so an orphan that was reparented to init is
still found. Nothing here sleeps to synchronise: callers poll with a deadline.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
POLL_S = 0.05


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    state: str
    start: int
    """Start time in clock ticks since boot: with the PID, it names one process for good."""
    cmdline: str


def read_proc(pid: int) -> Proc | None:
    """The process ``pid``, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return Proc(pid, int(fields[1]), int(fields[3]), fields[0], int(fields[19]), cmdline)


def all_procs() -> list[Proc]:
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                procs.append(proc)
    return procs


def descendants(pid: int) -> list[Proc]:
    """Every live process below ``pid`` in the process tree (not ``pid`` itself)."""
    procs = all_procs()
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def alive(procs: Iterable[Proc]) -> list[Proc]:
    """Those of ``procs`` that still run (same PID and start time, not a zombie)."""
    out = []
    for proc in procs:
        now = read_proc(proc.pid)
        if now is not None and now.start == proc.start and now.state != "Z":
            out.append(now)
    return out


def in_session(sid: int) -> list[Proc]:
    """Live, non-zombie processes of session ``sid``."""
    return [p for p in all_procs() if p.sid == sid and p.state != "Z"]


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)  # polling an external process's state: there is no event


@dataclass(frozen=True)
class Listener:
    proto: str
    address: str
    port: int
    pid: int
    process: str

    @property
    def loopback(self) -> bool:
        return self.address in LOOPBACK


_USER = re.compile(r'\("([^"]*)",pid=(\d+),')


def listeners(pids: Iterable[int]) -> list[Listener]:
    """Every listening TCP socket and bound UDP socket of ``pids`` (``ss -ltunpH``)."""
    wanted = set(pids)
    out = subprocess.run(
        ["ss", "-ltunpH"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        proto, local = parts[0], parts[4]
        host, _, port = local.rpartition(":")
        host = host.strip("[]").split("%", 1)[0]
        for name, pid in _USER.findall(line):
            if int(pid) in wanted:
                found.append(Listener(proto, host, int(port), int(pid), name))
    return found


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    return [pid, *(p.pid for p in descendants(pid))]


def exposed(pid: int) -> list[Listener]:
    """Listeners of ``pid``'s process tree on anything but 127.0.0.1 or ::1."""
    return [item for item in listeners(tree_pids(pid)) if not item.loopback]
