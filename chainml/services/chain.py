"""The local chain: Anvil (default) or Ganache, on 127.0.0.1, with its state in the data directory.

State survives ``down``/``up``: Anvil dumps its state to ``chain/anvil-state.json`` when it
stops, and ``checkpoint`` writes the same file atomically on demand (the swarm calls it after
every state change it must not lose, so even a SIGKILL of Anvil loses nothing that was
reported). Anvil's own periodic dump is not used: it is not atomic, and a kill in the middle
of it would leave a corrupt state file. Ganache keeps a database that is durable per block.
Both use the same well-known test mnemonic, so account 0 is the same deployer on either engine.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from chainml.chain.deployments import Deployments, deployments_path, load_deployments
from chainml.errors import ConfigError, ServiceError
from chainml.services.process import (
    HOST,
    ServiceDir,
    ServiceRecord,
    ensure_port_free,
    free_port,
)
from chainml.services.rpc import rpc_call, rpc_ready
from chainml.toolchain import node_executable, npm_binary

ENGINES = ("anvil", "ganache")
DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""Foundry's and Hardhat's public test mnemonic: never use its keys outside a local chain."""
ACCOUNT_BALANCE_ETH = 1_000_000
GANACHE_CHAIN_ID = 1337
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ChainInfo:
    """A running local chain."""

    engine: str
    url: str
    port: int
    pid: int


@dataclass(frozen=True)
class ChainStatus:
    """What ``chainml chain status`` reports."""

    info: ChainInfo
    chain_id: int
    block_number: int
    deployments: Deployments | None


class LocalChain:
    """Start, stop and query the local chain whose state lives in ``data_dir/chain``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.service = ServiceDir(data_dir / "chain", "chain")

    @property
    def engine_file(self) -> Path:
        return self.service.directory / "engine"

    @property
    def anvil_state(self) -> Path:
        return self.service.directory / "anvil-state.json"

    @property
    def ganache_db(self) -> Path:
        return self.service.directory / "ganache-db"

    def recorded_engine(self) -> str | None:
        """The engine this data directory's chain state belongs to, if any."""
        if not self.engine_file.exists():
            return None
        engine = self.engine_file.read_text().strip()
        if engine not in ENGINES:
            raise ServiceError(
                f"{self.engine_file} names an unknown engine {engine!r}; the chain state in "
                f"{self.service.directory} is corrupt: move that directory away to start afresh"
            )
        return engine

    def up(self, port: int | None = None, engine: str | None = None) -> ChainInfo:
        """Start the chain (idempotent: returns the running one if it is already up)."""
        recorded = self.recorded_engine()
        engine = engine or recorded or "anvil"
        if engine not in ENGINES:
            raise ConfigError(
                f"unknown chain engine {engine!r}; choose one of {', '.join(ENGINES)}"
            )
        if recorded and recorded != engine:
            raise ConfigError(
                f"{self.service.directory} holds a {recorded} chain; it cannot be opened with "
                f"{engine}. Use another --data-dir for a {engine} chain."
            )
        running = self.service.running()
        if running is not None:
            if port is not None and port != running.port:
                raise ServiceError(
                    f"the chain is already running on port {running.port} (pid {running.pid}); "
                    "run `chainml chain down` first to move it to another port"
                )
            return _info(running)
        if port is None:
            port = free_port()
        else:
            ensure_port_free(port, f"the {engine} chain")
        argv = self._anvil_argv(port) if engine == "anvil" else self._ganache_argv(port)
        url = f"http://{HOST}:{port}"
        self.service.directory.mkdir(parents=True, exist_ok=True)
        record = self.service.start(
            argv,
            port=port,
            ready=lambda _proc: rpc_ready(url),
            timeout=START_TIMEOUT_S,
            details={"engine": engine, "url": url},
        )
        self.engine_file.write_text(engine + "\n")
        return _info(record)

    def down(self) -> ChainInfo | None:
        """Stop the chain this data directory started; its state is kept. None if not running."""
        with contextlib.suppress(ServiceError):
            self.checkpoint()  # atomic, unlike Anvil's own dump on exit
        record = self.service.stop()
        return _info(record) if record else None

    def info(self) -> ChainInfo | None:
        record = self.service.running()
        return _info(record) if record else None

    def checkpoint(self) -> bool:
        """Persist the running Anvil chain's state now (atomically); False if nothing to do."""
        info = self.info()
        if info is None or info.engine != "anvil":
            return False
        dumped = rpc_call(info.url, "anvil_dumpState", timeout=120)
        try:
            state = gzip.decompress(bytes.fromhex(str(dumped).removeprefix("0x")))
        except (ValueError, OSError) as exc:
            raise ServiceError(f"anvil_dumpState returned an unreadable state: {exc}") from exc
        tmp = self.anvil_state.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(state)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.anvil_state)
        return True

    def status(self) -> ChainStatus | None:
        """Chain id, head block and deployed addresses, or None if the chain is down."""
        info = self.info()
        if info is None:
            return None
        chain_id = int(rpc_call(info.url, "eth_chainId"), 16)
        block_number = int(rpc_call(info.url, "eth_blockNumber"), 16)
        return ChainStatus(
            info=info,
            chain_id=chain_id,
            block_number=block_number,
            deployments=load_deployments(deployments_path(self.data_dir)),
        )

    def _anvil_argv(self, port: int) -> list[str]:
        if self.anvil_state.exists():
            _check_anvil_state(self.anvil_state)
        return [
            str(npm_binary("anvil")),
            "--host", HOST,
            "--port", str(port),
            "--mnemonic", DEV_MNEMONIC,
            "--balance", str(ACCOUNT_BALANCE_ETH),
            "--state", str(self.anvil_state),
            "--silent",
        ]  # fmt: skip

    def _ganache_argv(self, port: int) -> list[str]:
        self.ganache_db.mkdir(parents=True, exist_ok=True)
        return [
            str(node_executable()),
            str(npm_binary("ganache").resolve()),
            "--server.host", HOST,
            "--server.port", str(port),
            "--database.dbPath", str(self.ganache_db),
            "--chain.chainId", str(GANACHE_CHAIN_ID),
            "--chain.hardfork", "shanghai",
            "--wallet.mnemonic", DEV_MNEMONIC,
            "--wallet.defaultBalance", str(ACCOUNT_BALANCE_ETH),
            "--logging.quiet",
        ]  # fmt: skip


def _info(record: ServiceRecord) -> ChainInfo:
    return ChainInfo(
        engine=str(record.details.get("engine", "anvil")),
        url=str(record.details.get("url", f"http://{HOST}:{record.port}")),
        port=record.port,
        pid=record.pid,
    )


def _check_anvil_state(path: Path) -> None:
    """Anvil's own message for a broken state file is cryptic; say plainly what is wrong."""
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError) as exc:
        raise ServiceError(
            f"the chain state file {path} is corrupt ({exc}). Restore it from a backup, or move "
            "it away to start a fresh chain (deployed contracts on it will be lost)"
        ) from exc
