"""Fixtures shared by every test package: a real local chain and a real IPFS node.

Both run on free 127.0.0.1 ports with their state in a temporary directory, are started once
per session, and are stopped (by PID, via their own ``down``) at the end, so nothing is left
running. Test packages add their own fixtures in their own conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from chainml.services.chain import ChainInfo, LocalChain
from chainml.services.ipfs import IpfsInfo, LocalIpfsNode


@pytest.fixture(scope="session")
def chain_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chain-data")


@pytest.fixture(scope="session")
def chain(chain_data_dir: Path) -> Iterator[ChainInfo]:
    """A session-wide Anvil chain (use snapshots for per-test isolation)."""
    local = LocalChain(chain_data_dir)
    info = local.up()
    try:
        yield info
    finally:
        local.down()


@pytest.fixture(scope="session")
def w3(chain: ChainInfo) -> Web3:
    web3 = Web3(Web3.HTTPProvider(chain.url, request_kwargs={"timeout": 30}))
    assert web3.is_connected()
    return web3


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsInfo]:
    """A session-wide offline js-ipfs node serving Kubo's RPC API."""
    node = LocalIpfsNode(tmp_path_factory.mktemp("ipfs-data"))
    info = node.up()
    try:
        yield info
    finally:
        node.down()
