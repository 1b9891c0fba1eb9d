"""What every actor reads through: one chain connection, the deployment and one store.

An actor process builds its ``ActorEnv`` from an RPC URL, a deployments file and an IPFS spec
(``embedded`` or a Kubo RPC API URL); the swarm harness builds it from its own connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.connect import connect
from chainml.chain.deployments import Deployments
from chainml.chain.errors import chain_errors
from chainml.storage.store import Store, open_store


@dataclass
class ActorEnv:
    rpc_url: str
    ledger: Ledger
    deployments: Deployments
    store: Store
    store_spec: str
    data_dir: Path

    @property
    def w3(self) -> Web3:
        return self.ledger.w3

    @property
    def from_block(self) -> int:
        """Events are read from the deployment's first block on."""
        return self.deployments.block_number

    def now(self) -> int:
        """The chain's time (the latest block's timestamp): deadlines are measured in it."""
        return int(self.w3.eth.get_block("latest")["timestamp"])


def open_env(rpc_url: str, deployments_file: Path, store_spec: str, data_dir: Path) -> ActorEnv:
    """Connect to the chain and the store; bad input or a dead chain is one clear line."""
    with chain_errors(rpc_url):
        source = connect(rpc_url, deployments_file, reader=Ledger, timeout=60)
    store = open_store(store_spec, data_dir)
    ledger: Ledger = source.reader  # type: ignore[assignment]
    return ActorEnv(rpc_url, ledger, source.deployments, store, store_spec, data_dir)
