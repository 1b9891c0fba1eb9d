"""Actor fixtures: one Anvil and one js-ipfs node, a deployment whose roles are fresh keys
(not the chain's unlocked accounts), and a way to start actor daemons as OS processes.

Every process a test starts is recorded and stopped by PID at the end (SIGTERM, then SIGKILL
if it does not stop), and each runs in its own session so nothing it starts can outlive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from chainml.actors.keys import write_key_file
from chainml.chain.client import Ledger
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.deployments import Deployments, deployments_path, save_deployments
from chainml.paths import PROJECT_ROOT
from chainml.services.chain import LocalChain
from chainml.services.ipfs import LocalIpfsNode
from chainml.storage.cid import cid_to_onchain
from chainml.storage.store import Store, open_store
from chainml.swarm.services import genesis_weights

ROLES = ("aggregator", "gateway", "challenger", "validator-a", "validator-b", "validator-c")
FUNDING_WEI = Web3.to_wei(10, "ether")


def role_key(role: str) -> LocalAccount:
    return Account.from_key(keccak(text=f"chainml-actors-test-{role}"))


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class ActorNet:
    """A chain, an IPFS node and a deployment, plus the daemons started against them."""

    data_dir: Path
    rpc_url: str
    ipfs_url: str
    w3: Web3
    ledger: Ledger
    store: Store
    deployments: Deployments
    keys: dict[str, LocalAccount]
    daemons: list[Daemon] = field(default_factory=list)

    def key_file(self, role: str) -> Path:
        return write_key_file(self.data_dir / "keys" / f"{role}.key", self.keys[role])

    def start(self, role: str, command: str, *args: str) -> Daemon:
        """``chainml <command> run`` as its own process, its key in a file (never in argv)."""
        log = self.data_dir / "logs" / f"{role}-{len(self.daemons)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINML_KEY")} | {
            "PYTHONPATH": str(PROJECT_ROOT)
        }
        argv = [
            sys.executable, "-m", "chainml", "--data-dir", str(self.data_dir), command, "run",
            "--rpc-url", self.rpc_url, "--ipfs", self.ipfs_url,
            "--key-file", str(self.key_file(role)), "--poll", "0.1", *args,
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=True,
            )
        daemon = Daemon(role, proc, log)
        self.daemons.append(daemon)
        return daemon

    def stop(self, daemon: Daemon, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal one daemon by PID and wait for it; SIGKILL if it ignores SIGTERM."""
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(sig)
            try:
                daemon.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait(timeout=timeout)
        return int(daemon.proc.returncode)


@pytest.fixture
def actor_net(tmp_path: Path) -> Iterator[ActorNet]:
    data_dir = tmp_path / "data"
    chain = LocalChain(tmp_path / "chain")
    ipfs_node = LocalIpfsNode(tmp_path / "ipfs")
    net: ActorNet | None = None
    try:
        info = chain.up()
        ipfs = ipfs_node.up()
        w3 = Web3(Web3.HTTPProvider(info.url, request_kwargs={"timeout": 60}))
        admin = w3.eth.accounts[0]
        keys = {role: role_key(role) for role in ROLES}
        for account in keys.values():  # actors pay their own gas (and the gateway its bond)
            tx = w3.eth.send_transaction(
                {"from": admin, "to": account.address, "value": FUNDING_WEI}
            )
            w3.eth.wait_for_transaction_receipt(tx)
        store = open_store(ipfs.api_url, data_dir)
        weights, _ = genesis_weights("sine", 0)
        params = DeployParams(
            genesis_weights=cid_to_onchain(store.put(weights)),
            aggregators=(keys["aggregator"].address,),
            validators=tuple(keys[r].address for r in ROLES if r.startswith("validator")),
        )
        deployments = deploy(w3, admin, params)
        save_deployments(deployments_path(data_dir), deployments)
        ledger = Ledger.from_deployments(w3, deployments)
        net = ActorNet(data_dir, info.url, ipfs.api_url, w3, ledger, store, deployments, keys)
        yield net
    finally:
        for daemon in net.daemons if net else []:
            net.stop(daemon, signal.SIGKILL)  # type: ignore[union-attr]
        ipfs_node.down()
        chain.down()
