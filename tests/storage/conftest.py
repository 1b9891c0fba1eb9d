"""Storage fixtures: stores on a temporary directory and on the session's js-ipfs node.

The js-ipfs node itself comes from ``tests/conftest.py`` (``ipfs_node``), started once per
session on a free 127.0.0.1 port and stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.services.ipfs import IpfsInfo
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.kubo import KuboStore
from chainml.storage.store import Store


@pytest.fixture
def embedded(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


@pytest.fixture
def kubo(ipfs_node: IpfsInfo) -> Iterator[KuboStore]:
    store = KuboStore(ipfs_node.api_url, timeout=10.0)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["embedded", "kubo"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each backend in turn, for behaviour both must share."""
    return request.getfixturevalue(request.param)
