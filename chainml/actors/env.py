"""What every actor reads through: one chain connection, the deployment and one store.

An actor process builds its ``ActorEnv`` from an RPC URL, a deployments file and an IPFS spec
(``embedded`` or a Kubo RPC API URL); the swarm harness builds it from its own connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from chainml.chain.client import Ledger, http_web3
from chainml.chain.deployments import Deployments, load_deployments
from chainml.chain.errors import chain_errors
from chainml.errors import ChainError, ConfigError
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
    deployments = load_deployments(deployments_file)
    if deployments is None:
        raise ConfigError(
            f"no deployments file at {deployments_file}; deploy first (`chainml deploy`) or "
            "pass --deployments"
        )
    w3 = http_web3(rpc_url)
    with chain_errors(rpc_url):
        if not w3.is_connected():
            raise ChainError(f"no chain answers at {rpc_url}; start it or pass --rpc-url")
        if w3.eth.chain_id != deployments.chain_id:
            raise ConfigError(
                f"{deployments_file} is for chain id {deployments.chain_id}, but {rpc_url} is "
                f"chain {w3.eth.chain_id}"
            )
        ledger = Ledger.from_deployments(w3, deployments)
        if not w3.eth.get_code(ledger.ledger.address):
            raise ConfigError(
                f"no ledger contract at {ledger.ledger.address} on {rpc_url}; redeploy"
            )
    store = open_store(store_spec, data_dir)
    return ActorEnv(rpc_url, ledger, deployments, store, store_spec, data_dir)
