"""Opening a deployment to read: any JSON-RPC URL plus a deployments file.

Connecting checks everything a user can get wrong up front (no chain at the URL, no or a
corrupt deployments file, a deployments file from another chain, no contract code at its
addresses), so every later read can assume a live chain with our contracts on it, and every
mistake is one clear message. ``chainml inspect``, ``chainml verify`` and the actor daemons all
start here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from chainml.chain.artifacts import LEDGER, VOTING
from chainml.chain.client import http_web3
from chainml.chain.deployments import Deployments, load_deployments
from chainml.chain.reader import ChainReader
from chainml.errors import ChainError, ConfigError


@dataclass(frozen=True)
class ChainSource:
    """A connected chain with the chainml contracts of one deployments file on it."""

    url: str
    reader: ChainReader
    """A ``ChainReader``, or a ``Ledger`` where the caller also sends transactions."""
    deployments: Deployments
    head: int
    """Latest block number when the source was opened: a one-off view reads up to there."""

    @property
    def w3(self) -> Web3:
        return self.reader.w3

    @property
    def first_block(self) -> int:
        """The deployment's first block: events are read from there on."""
        return self.deployments.block_number

    def contract_name(self, address: str) -> str:
        """The deployments name of ``address`` (checksummed comparison), or the address."""
        for name, known in self.deployments.contracts.items():
            if known.lower() == address.lower():
                return name
        return address


def connect(
    rpc_url: str,
    deployments_file: Path,
    *,
    reader: type[ChainReader] = ChainReader,
    timeout: float = 30,
) -> ChainSource:
    """Open ``rpc_url`` and check that the contracts of ``deployments_file`` live there;
    ``reader`` is the class to read (and maybe send) through."""
    deployments = load_deployments(deployments_file)
    if deployments is None:
        raise ConfigError(
            f"no deployments file at {deployments_file}: deploy first (`chainml deploy` or "
            "`make deploy`) or pass --deployments PATH"
        )
    w3 = http_web3(rpc_url, timeout=timeout)
    try:
        chain_id = w3.eth.chain_id
        head = w3.eth.block_number
    except Exception as exc:  # requests/urllib3/JSON errors: all mean "no usable chain here"
        raise ChainError(
            f"no chain reachable at {rpc_url} ({type(exc).__name__}); start one with "
            "`chainml chain up` or pass --rpc-url"
        ) from exc
    if chain_id != deployments.chain_id:
        raise ConfigError(
            f"{deployments_file} is for chain id {deployments.chain_id} but {rpc_url} is chain "
            f"id {chain_id}: pass the deployments file of that chain"
        )
    for name in (LEDGER, VOTING):
        address = deployments.address(name)
        if not Web3.is_address(address):
            raise ConfigError(f"{deployments_file}: {name} address {address!r} is not valid")
        if not w3.eth.get_code(Web3.to_checksum_address(address)):
            raise ConfigError(
                f"no contract code at {address} ({name}) on {rpc_url}: the deployments file "
                "belongs to another chain or the chain was reset; redeploy with `chainml deploy`"
            )
    return ChainSource(rpc_url, reader.from_deployments(w3, deployments), deployments, head)
