"""Robustness fixtures: a local Ray head on loopback, and fresh Anvil chains per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chainml.services.chain import ChainInfo, LocalChain
from tests.robustness.ray_head import RayHead, start_head, stop_head


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """A Ray head on 127.0.0.1 with 2 CPUs; stopped by PID, and nothing of it may be left."""
    head = start_head(num_cpus=2)
    try:
        yield head
    finally:
        killed = stop_head(head)
        assert killed == [], f"the Ray head left processes behind: {killed}"
        assert head.left_behind() == []


@pytest.fixture
def ray_driver_env(ray_head: RayHead, monkeypatch: pytest.MonkeyPatch) -> RayHead:
    """This process as a Ray driver of ``ray_head`` (the head's auth token and loopback mode)."""
    for key in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED", "RAY_TMPDIR",
                "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):  # fmt: skip
        monkeypatch.setenv(key, ray_head.env[key])
    return ray_head


@pytest.fixture
def make_chain(tmp_path: Path) -> Iterator[Callable[[str], tuple[Path, ChainInfo]]]:
    chains: list[LocalChain] = []

    def make(name: str) -> tuple[Path, ChainInfo]:
        data_dir = tmp_path / name
        chain = LocalChain(data_dir)
        chains.append(chain)
        return data_dir, chain.up()

    yield make
    for chain in chains:
        chain.down()
