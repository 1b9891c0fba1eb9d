"""Start, find and stop one background service process, tracked by a pid file.

Both local services (the chain and the IPFS node) are detached daemons that outlive the CLI call
that started them. Each gets a directory with a ``service.json`` (pid, port, command line) and a
log file. ``stop`` only ever signals the pid recorded there, and only after checking that the pid
still runs the command we started (pids get reused), so ``down`` never kills a stranger.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from chainml.errors import ServiceError

SERVICE_FILE = "service.json"
LOG_FILE = "service.log"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceRecord:
    """What ``up`` wrote down about a running service."""

    name: str
    pid: int
    port: int
    argv: list[str]
    started_at: float
    details: dict[str, object]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, service: str) -> None:
    """Fail early and clearly if something already listens on ``port``."""
    if not 0 < port < 65536:
        raise ServiceError(f"port {port} is not a valid TCP port (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: connections of a stopped server that linger in
        # TIME_WAIT must not make its port look taken (a restart on the same port would fail);
        # a live listener still makes the bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen(1)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise ServiceError(
                    f"cannot start {service}: port {port} on {HOST} is already in use; "
                    "pick another with --port, or omit --port to use a free one"
                ) from exc
            raise


def _process_argv(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def is_our_process(record: ServiceRecord) -> bool:
    """True if ``record.pid`` is alive and still runs the command we started."""
    argv = _process_argv(record.pid)
    if not argv or _is_zombie(record.pid):
        return False
    # Compare the tail of the command line: the first element may be resolved differently
    # (e.g. `node` vs `/usr/bin/node` through a shebang).
    return argv[-len(record.argv[1:]) :] == record.argv[1:] if len(record.argv) > 1 else True


class ServiceDir:
    """The directory that holds one service's pid file and log."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name

    @property
    def record_path(self) -> Path:
        return self.directory / SERVICE_FILE

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    def read(self) -> ServiceRecord | None:
        """The recorded service, or None; a corrupt pid file is a clear error."""
        if not self.record_path.exists():
            return None
        try:
            raw = json.loads(self.record_path.read_text())
            return ServiceRecord(
                name=str(raw["name"]),
                pid=int(raw["pid"]),
                port=int(raw["port"]),
                argv=[str(a) for a in raw["argv"]],
                started_at=float(raw["started_at"]),
                details=dict(raw.get("details", {})),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError(
                f"the {self.name} pid file {self.record_path} is corrupt ({exc}); if no "
                f"{self.name} is running, delete that file and retry"
            ) from exc

    def running(self) -> ServiceRecord | None:
        """The recorded service if it is still alive; forgets a stale record."""
        record = self.read()
        if record is None:
            return None
        if is_our_process(record):
            return record
        self.record_path.unlink(missing_ok=True)
        return None

    def start(
        self,
        argv: Sequence[str],
        port: int,
        ready: Callable[[subprocess.Popen[bytes]], bool],
        timeout: float,
        details: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
    ) -> ServiceRecord:
        """Launch ``argv`` detached, wait until ``ready`` says so, and record it.

        If the process dies or is not ready in time, it is killed and the error quotes the tail
        of its log, so nothing is left behind and the user sees why.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting {self.name}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        record = ServiceRecord(
            name=self.name,
            pid=proc.pid,
            port=port,
            argv=list(argv),
            started_at=time.time(),
            details=details or {},
        )
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                raise ServiceError(
                    f"{self.name} exited with code {code} while starting; its log says:\n"
                    f"{self.log_tail()}"
                )
            if ready(proc):
                break
            if time.monotonic() > deadline:
                _terminate(proc.pid, grace=2.0)
                proc.wait(timeout=5)
                raise ServiceError(
                    f"{self.name} did not become ready within {timeout:.0f} s; its log says:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)  # readiness polling of a child process, not test synchronisation
        self._write(record)
        return record

    def add_details(self, record: ServiceRecord, **details: object) -> ServiceRecord:
        """Record facts learnt after start-up (e.g. the IPFS peer id)."""
        updated = replace(record, details={**record.details, **details})
        self._write(updated)
        return updated

    def _write(self, record: ServiceRecord) -> None:
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
        os.replace(tmp, self.record_path)

    def stop(self, grace: float = 15.0) -> ServiceRecord | None:
        """Stop the recorded service (SIGTERM, then SIGKILL after ``grace`` s); None if none."""
        record = self.running()
        if record is None:
            return None
        _terminate(record.pid, grace=grace)
        self.record_path.unlink(missing_ok=True)
        return record

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the process group led by ``pid``, escalating to SIGKILL after ``grace`` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if _process_argv(pid) is None or _is_zombie(pid):
            _reap(pid)
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
