"""Fixtures for the inspect tests: one chain populated like a swarm run, and a CLI runner.

The populated deployment is made once per session on the shared Anvil (tests/conftest.py);
inspect only reads, so tests need no snapshots. ``invoke`` runs the real ``inspect`` sub-app
under a throwaway root app that sets the data directory, as the lead's root app does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner, Result
from web3 import Web3

from chainml.cli import inspect_cmd
from chainml.cli.context import CliContext, console
from chainml.services.chain import ChainInfo
from chainml.services.ipfs import IpfsInfo
from tests.inspection.swarm_chain import SwarmChain, populate


@pytest.fixture(scope="session")
def swarm_chain(
    w3: Web3, chain: ChainInfo, ipfs_node: IpfsInfo, tmp_path_factory: pytest.TempPathFactory
) -> SwarmChain:
    return populate(
        w3, chain.url, tmp_path_factory.mktemp("inspect-deployments"), ipfs_node.api_url
    )


def _root() -> typer.Typer:
    root = typer.Typer(pretty_exceptions_enable=False)

    @root.callback()
    def options(
        ctx: typer.Context, data_dir: Annotated[Path, typer.Option("--data-dir")] = Path(".")
    ) -> None:
        ctx.obj = CliContext(data_dir=data_dir)

    root.add_typer(inspect_cmd.app, name="inspect")
    return root


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tables as on a wide terminal, so full addresses appear on one line."""
    monkeypatch.setattr(console, "width", 250)
    yield


@pytest.fixture
def invoke(swarm_chain: SwarmChain, tmp_path: Path, wide_console: None) -> Callable[..., Result]:
    """``invoke("nodes", "--json")`` against the populated chain."""
    runner = CliRunner()

    def run(*args: str, target: bool = True) -> Result:
        extra = ["--rpc-url", swarm_chain.url, "--deployments", str(swarm_chain.deployments_file)]
        if args and args[0] in ("nodes", "versions", "node"):  # these read IPFS as well
            extra += ["--ipfs", swarm_chain.ipfs_url]
        argv = ["--data-dir", str(tmp_path), "inspect", *args, *(extra if target else [])]
        return runner.invoke(_root(), argv, catch_exceptions=True)

    return run


@pytest.fixture
def invoke_json(invoke: Callable[..., Result]) -> Callable[..., Any]:
    def run(*args: str) -> Any:
        result = invoke(*args, "--json")
        assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.stdout)

    return run
