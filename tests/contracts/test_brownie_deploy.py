"""The brownie deploy script, run as users run it, on a fresh Anvil and on Ganache."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from chainml.chain.brownie_deploy import run_deploy_script, run_register_script
from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.services.chain import LocalChain


def _deploy_and_check(engine: str, tmp_path: Path) -> None:
    chain = LocalChain(tmp_path / "chain")
    info = chain.up(engine=engine)
    try:
        data = tmp_path / "data"
        deployments = run_deploy_script(info.url, data)
        assert load_deployments(deployments_path(data)) == deployments
        w3 = Web3(Web3.HTTPProvider(info.url))
        ledger = Ledger.from_deployments(w3, deployments)
        assert ledger.current_version() == 0
        assert ledger.ledger.functions.validatorCount().call() == 7
        assert ledger.has_role("voting", ledger.voting.address)
        out = run_register_script(info.url, data, 3)
        assert "registered 3 new nodes" in out
        assert ledger.ledger.functions.nodeCount().call() == 3
    finally:
        chain.down()


@pytest.mark.slow
def test_brownie_deploy_on_anvil(tmp_path: Path) -> None:
    _deploy_and_check("anvil", tmp_path)


@pytest.mark.slow
@pytest.mark.ganache
def test_brownie_deploy_on_ganache(tmp_path: Path) -> None:
    _deploy_and_check("ganache", tmp_path)
