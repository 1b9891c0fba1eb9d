"""brownie script: register simulated nodes on the deployed ledger.

    brownie run scripts/register_nodes.py main <count> [gateway_account_index] --network <net>

Registers the deterministic dev node keys 0..count-1 (chainml.chain.keys), behind the dev
account ``gateway_account_index`` (default 9) as their gateway, using the deployments file in
CHAINML_DATA_DIR. Nodes already registered are skipped, so the script can be re-run.
"""

from __future__ import annotations

from brownie import accounts, network
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.chain.keys import dev_node_accounts
from chainml.errors import ConfigError
from chainml.paths import data_dir


def main(count: int = 10, gateway_index: int = 9) -> None:
    path = deployments_path(data_dir())
    deployments = load_deployments(path)
    if deployments is None:
        raise ConfigError(f"nothing deployed yet ({path} is missing); run scripts/deploy.py")
    w3 = Web3(Web3.HTTPProvider(network.web3.provider.endpoint_uri))
    ledger = Ledger.from_deployments(w3, deployments)
    gateway = accounts[int(gateway_index)].address
    nodes = [
        n for n in dev_node_accounts(int(count)) if not ledger.node_info(n.address)["registered"]
    ]
    if nodes:
        profiles = [(bytes(32), 0x55)] * len(nodes)
        ledger.register_nodes(
            [n.address for n in nodes], profiles, accounts[0].address, gateway=gateway
        )
    print(
        f"registered {len(nodes)} new nodes (of {count}) behind gateway {gateway}; "
        f"{ledger.ledger.functions.nodeCount().call()} registered in total"
    )
