"""A local Ray head for tests: 127.0.0.1 only, fixed free ports, its files in its own temp dir.

Started with ``ray start --head --block`` in a new session, so the head is one process tree we
own; stopped by that PID (SIGTERM: ``--block`` then stops what it started), then whatever of its
session is left is SIGKILLed by PID. ``ray stop`` is never used: it kills every Ray process of
the user on the machine, not just ours. See shared NOTES.md "Ray" for why each setting is there.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.robustness import procs

HOST = "127.0.0.1"
WORKER_PORTS = 16
START_TIMEOUT_S = 90.0


def ray_env(temp_dir: Path) -> dict[str, str]:
    """The environment for the head and for every driver that connects to it."""
    return {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep every gRPC server on 127.0.0.1
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(temp_dir),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(temp_dir / "auth_token"),
    }


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _free_range(width: int) -> int:
    """The first port of ``width`` consecutive ports free on 127.0.0.1."""
    base = 20_000 + (os.getpid() * 37) % 30_000
    for start in range(base, 60_000, width):
        try:
            socks = []
            for port in range(start, start + width):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind((HOST, port))
            return start
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range for Ray workers")


@dataclass
class RayHead:
    temp_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    seen: list[procs.Proc] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return ray_env(self.temp_dir)

    def pids(self) -> list[int]:
        """The head's whole process tree (GCS, raylet, agents, workers) right now."""
        assert self.proc is not None
        tree = [self.proc.pid, *(p.pid for p in procs.in_session(self.proc.pid))]
        self.seen.extend(p for p in procs.descendants(self.proc.pid) if p not in self.seen)
        return sorted(set(tree))

    def left_behind(self) -> list[procs.Proc]:
        assert self.proc is not None
        found = {p.pid: p for p in procs.alive(self.seen)}
        found.update({p.pid: p for p in procs.in_session(self.proc.pid)})
        return list(found.values())


def start_head(num_cpus: int = 2) -> RayHead:
    temp_dir = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))  # short: Unix socket paths
    ports = _free_ports(7)
    workers = _free_range(WORKER_PORTS)
    head = RayHead(temp_dir=temp_dir, port=ports[0])
    token = temp_dir / "auth_token"  # token auth, with the token here rather than in ~/.ray
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    ray = str(Path(sys.executable).with_name("ray"))
    argv = [
        ray, "start", "--head", "--block",
        f"--node-ip-address={HOST}", f"--port={ports[0]}",
        f"--object-manager-port={ports[1]}", f"--node-manager-port={ports[2]}",
        f"--runtime-env-agent-port={ports[3]}", f"--metrics-export-port={ports[4]}",
        f"--dashboard-agent-listen-port={ports[5]}", f"--dashboard-agent-grpc-port={ports[6]}",
        f"--min-worker-port={workers}", f"--max-worker-port={workers + WORKER_PORTS - 1}",
        f"--num-cpus={num_cpus}", "--object-store-memory=200000000",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    log = open(temp_dir / "head.log", "wb")  # noqa: SIM115 (closed with the process)
    head.proc = subprocess.Popen(
        argv, env=head.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    try:
        procs.wait_for(lambda: _ready(head), START_TIMEOUT_S, "the Ray head to accept drivers")
    except BaseException:
        stop_head(head)
        raise
    head.pids()
    return head


def _ready(head: RayHead) -> bool:
    assert head.proc is not None
    if head.proc.poll() is not None:
        raise AssertionError(
            f"ray start exited with {head.proc.returncode}: "
            + (head.temp_dir / "head.log").read_text(errors="replace")[-2000:]
        )
    text = (head.temp_dir / "head.log").read_text(errors="replace")
    if "Ray runtime started" not in text:
        return False
    with socket.socket() as sock:
        return sock.connect_ex((HOST, head.port)) == 0


def stop_head(head: RayHead, timeout: float = 60.0) -> list[procs.Proc]:
    """Stop the head we started (by PID); returns what had to be SIGKILLed afterwards."""
    if head.proc is None:
        return []
    if head.proc.poll() is None:
        head.pids()
        head.proc.send_signal(signal.SIGTERM)
        try:
            head.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            head.proc.kill()
            head.proc.wait()
    try:
        procs.wait_for(lambda: not head.left_behind(), 30, "the Ray head's processes to exit")
        killed: list[procs.Proc] = []
    except AssertionError:
        killed = head.left_behind()
        for proc in killed:
            os.kill(proc.pid, signal.SIGKILL)
        procs.wait_for(lambda: not procs.alive(killed), 30, "leftover Ray processes to die")
    shutil.rmtree(head.temp_dir, ignore_errors=True)
    return killed
