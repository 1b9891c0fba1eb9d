"""The local IPFS node: js-ipfs serving Kubo's RPC API on 127.0.0.1, fully offline.

No Kubo binary can be installed here, so the project runs js-ipfs (npm ``ipfs-core`` +
``ipfs-http-server``) through ``node/ipfs-node.mjs``, which applies the hardened offline config
(no bootstrap, no routing, no MDNS, no swarm listeners) on every start. The repo lives in
``data_dir/ipfs/repo``, so pinned content survives ``down``/``up``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from chainml.errors import ServiceError
from chainml.paths import node_modules, node_scripts_dir
from chainml.services.process import HOST, ServiceDir, ServiceRecord, ensure_port_free, free_port
from chainml.toolchain import SETUP_HINT, node_executable

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class IpfsInfo:
    """A running local IPFS node."""

    api_url: str
    port: int
    pid: int
    peer_id: str


class LocalIpfsNode:
    """Start, stop and query the js-ipfs node whose repo lives in ``data_dir/ipfs``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.service = ServiceDir(data_dir / "ipfs", "IPFS node")

    @property
    def repo_dir(self) -> Path:
        return self.service.directory / "repo"

    def up(self, port: int | None = None) -> IpfsInfo:
        """Start the node (idempotent: returns the running one if it is already up)."""
        running = self.service.running()
        if running is not None:
            if port is not None and port != running.port:
                raise ServiceError(
                    f"the IPFS node is already running on port {running.port} "
                    f"(pid {running.pid}); run `chainml ipfs down` first to move it"
                )
            return _info(running)
        if port is None:
            port = free_port()
        else:
            ensure_port_free(port, "the IPFS node")
        for package in ("ipfs-core", "ipfs-http-server"):
            if not (node_modules() / package).exists():
                raise ServiceError(f"npm package {package} is not installed; {SETUP_HINT}")
        self._check_repo()
        self._clear_stale_lock()
        scripts = node_scripts_dir()
        argv = [
            str(node_executable()),
            "--import",
            (scripts / "polyfills.mjs").as_uri(),
            str(scripts / "ipfs-node.mjs"),
            str(self.repo_dir),
            str(port),
        ]
        env = {**os.environ, "NODE_PATH": str(node_modules())}
        record = self.service.start(
            argv,
            port=port,
            ready=lambda _proc: self._ready_line() is not None,
            timeout=START_TIMEOUT_S,
            env=env,
            details={"api_url": f"http://{HOST}:{port}"},
        )
        ready = self._ready_line() or {}
        record = self.service.add_details(record, peer_id=str(ready.get("peerId", "")))
        return _info(record)

    def _clear_stale_lock(self) -> None:
        """Remove the repo lock a killed node left behind. Only called when no node of this
        data directory is running: js-ipfs would otherwise refuse to start until the lock goes
        stale by age, so a node killed with SIGKILL could not be restarted at once."""
        lock = self.repo_dir / "repo.lock"
        if lock.is_dir():
            shutil.rmtree(lock, ignore_errors=True)
        elif lock.exists():
            lock.unlink(missing_ok=True)

    def down(self) -> IpfsInfo | None:
        """Stop the node this data directory started; the repo is kept. None if not running."""
        record = self.service.stop()
        return _info(record) if record else None

    def info(self) -> IpfsInfo | None:
        record = self.service.running()
        return _info(record) if record else None

    def _ready_line(self) -> dict[str, object] | None:
        """The launcher's last ``{"ready": true}`` line in the log of the current start."""
        try:
            text = self.service.log_path.read_text(errors="replace")
        except OSError:
            return None
        current = text.rsplit("--- starting", 1)[-1]
        for line in reversed(current.splitlines()):
            if line.startswith('{"ready"'):
                try:
                    return json.loads(line)
                except ValueError:
                    return None
        return None

    def _check_repo(self) -> None:
        """A repo whose config is unreadable would make js-ipfs fail obscurely; say so plainly."""
        config = self.repo_dir / "config"
        if not config.exists():
            return
        try:
            json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise ServiceError(
                f"the IPFS repo at {self.repo_dir} is corrupt (its config is unreadable: {exc}); "
                "restore it, or move it away to start an empty repo (pinned content is lost)"
            ) from exc


def _info(record: ServiceRecord) -> IpfsInfo:
    return IpfsInfo(
        api_url=str(record.details.get("api_url", f"http://{HOST}:{record.port}")),
        port=record.port,
        pid=record.pid,
        peer_id=str(record.details.get("peer_id", "")),
    )
