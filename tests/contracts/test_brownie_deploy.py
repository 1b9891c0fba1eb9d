"""The brownie deploy script with brownie's own objects, on a fresh Anvil and on Ganache.

brownie connects (``network.connect``) to a local chain, ``scripts/deploy.py`` deploys the
development parameters (``chainml/chain/deploy_params.json``) with brownie's ``accounts`` and
the ``ChainMLLedger`` / ``ChainMLVoting`` containers, ``scripts/register_nodes.py`` registers
nodes, and chainml reads the result from ``deployments.json``. The bytecode brownie deploys is
the bytecode chainml ships and deploys itself (``chainml.chain.artifacts``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from chainml.chain.artifacts import LEDGER, VOTING, artifact
from chainml.chain.brownie_run import NETWORK_ID, brownie_session
from chainml.chain.client import Ledger
from chainml.chain.deploy import DEV_PARAMS_FILE, deploy, load_params
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.chain.keys import dev_node_accounts
from chainml.paths import PROJECT_ROOT
from chainml.services.chain import LocalChain
from chainml.storage.cid import cid_to_onchain
from chainml.storage.store import open_store
from chainml.storage.unixfs import file_cid
from chainml.swarm.config import SwarmConfig
from chainml.swarm.services import genesis_weights


def _creation_input(w3: Web3, address: str) -> str:
    """The data of the transaction that created ``address`` (its creation code + arguments)."""
    for number in range(w3.eth.block_number, -1, -1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            if receipt["contractAddress"] == address:
                return "0x" + bytes(tx["input"]).hex()
    raise AssertionError(f"no creation transaction for {address}")


def _deploy_and_check(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = LocalChain(tmp_path / "chain")
    info = chain.up(engine=engine)
    data = tmp_path / "data"
    monkeypatch.setenv("CHAINML_DATA_DIR", str(data))  # where the scripts keep deployments
    store = open_store("embedded", data)
    try:
        with brownie_session(info.url) as session:
            from brownie import ChainMLLedger, ChainMLVoting, accounts, network

            assert network.is_connected() and network.show_active() == NETWORK_ID
            params = load_params(DEV_PARAMS_FILE, [a.address for a in accounts])
            deployments = session.script("deploy").deploy_to(params, store, deployments_path(data))
            ledger, voting = ChainMLLedger[-1], ChainMLVoting[-1]
            assert (ledger.address, voting.address) == (
                deployments.address(LEDGER),
                deployments.address(VOTING),
            )
            assert ledger.hasRole(ledger.VOTING_ROLE(), voting)
            assert session.script("register_nodes").main(3, 9) == 3
            assert session.script("register_nodes").main(3, 9) == 0  # re-run: nothing new
        assert not network.is_connected()

        w3 = Web3(Web3.HTTPProvider(info.url))
        # chainml reads what the brownie script wrote
        deployed = load_deployments(deployments_path(data))
        assert deployed == deployments
        ledger = Ledger.from_deployments(w3, deployed)
        genesis, _ = genesis_weights("sine", 0, SwarmConfig().recipe())
        assert ledger.version(0).weights == cid_to_onchain(file_cid(genesis))
        assert store.get(file_cid(genesis)) == genesis  # version 0 is content the store holds
        assert ledger.security_params() == params.security
        assert ledger.ledger.functions.validatorCount().call() == len(params.validators) == 3
        assert [ledger.has_role("validator", v) for v in params.validators] == [True] * 3
        assert ledger.has_role("aggregator", params.aggregators[0])
        nodes = dev_node_accounts(3)
        assert all(ledger.node_info(n.address).gateway == w3.eth.accounts[9] for n in nodes)

        # brownie deployed the creation code chainml ships, and chainml's own deploy does too
        mine = deploy(w3, w3.eth.accounts[0], params)
        for name in (LEDGER, VOTING):
            code = "0x" + artifact(name).bytecode
            assert _creation_input(w3, deployed.address(name)).startswith(code), name
            assert _creation_input(w3, mine.address(name)).startswith(code), name
    finally:
        chain.down()


@pytest.mark.slow
def test_brownie_deploy_on_anvil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deploy_and_check("anvil", tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.ganache
def test_brownie_deploy_on_ganache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deploy_and_check("ganache", tmp_path, monkeypatch)


@pytest.mark.slow
def test_brownie_run_deploy_on_the_anvil_network(tmp_path: Path) -> None:
    """The README's command as typed: ``brownie run scripts/deploy.py --network anvil``.

    brownie's ``anvil`` network is 127.0.0.1:8545; here the test's chain is elsewhere, so the
    network's port is moved with brownie's own CLI in a throw-away HOME. brownie's ``run``
    imports a script under a module name made of its absolute path, so in a checkout whose
    path has a dot it fails; `chainml deploy` is the way there (and is tested elsewhere).
    """
    chain = LocalChain(tmp_path / "chain")
    info = chain.up()
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    brownie = str(Path(sys.executable).with_name("brownie"))
    env = os.environ | {"HOME": str(home), "CHAINML_DATA_DIR": str(data)}
    try:
        subprocess.run(
            [brownie, "networks", "modify", "anvil", f"port={info.port}"],
            env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        proc = subprocess.run(
            [brownie, "run", "scripts/deploy.py", "--network", "anvil"],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if any("." in part for part in PROJECT_ROOT.parts[1:]):
            assert proc.returncode != 0 and "No module named" in proc.stdout + proc.stderr
            return
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        deployed = load_deployments(deployments_path(data))
        assert deployed is not None and f"deployments written to {deployments_path(data)}" in (
            proc.stdout
        )
        ledger = Ledger.from_deployments(Web3(Web3.HTTPProvider(info.url)), deployed)
        assert ledger.current_version() == 0
        assert json.loads(DEV_PARAMS_FILE.read_text())["validators"] == [2, 3, 4]
        assert ledger.ledger.functions.validatorCount().call() == 3
    finally:
        chain.down()
