"""Swarm fixtures: each test gets its own fresh Anvil chain and data directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.services.chain import LocalChain
from chainml.storage.store import Store, open_store
from chainml.swarm.config import SwarmConfig
from chainml.swarm.harness import run_swarm


@dataclass
class SwarmEnv:
    data_dir: Path
    rpc_url: str

    def run(
        self, config: SwarmConfig, ipfs: str = "embedded", workers: int = 1, name: str = "run"
    ) -> list[dict[str, Any]]:
        return run_swarm(
            config,
            data_dir=self.data_dir,
            run_dir=self.data_dir / "runs" / name,
            rpc_url=self.rpc_url,
            ipfs=ipfs,
            workers=workers,
            show_progress=False,
        )

    def ledger(self) -> Ledger:
        deployments = load_deployments(deployments_path(self.data_dir))
        assert deployments is not None
        return Ledger.from_deployments(Web3(Web3.HTTPProvider(self.rpc_url)), deployments)

    def store(self, ipfs: str = "embedded") -> Store:
        return open_store(ipfs, self.data_dir)

    def version_cids(self) -> list[str]:
        from chainml.storage.cid import onchain_to_str

        ledger = self.ledger()
        return [
            onchain_to_str(*ledger.version(v).weights) for v in range(ledger.current_version() + 1)
        ]


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[[str], SwarmEnv]]:
    chains: list[LocalChain] = []

    def make(name: str = "env") -> SwarmEnv:
        data_dir = tmp_path / name
        chain = LocalChain(data_dir)
        chains.append(chain)
        return SwarmEnv(data_dir, chain.up().url)

    yield make
    for chain in chains:
        chain.down()
