"""brownie script: register simulated nodes on the deployed ledger.

    brownie run scripts/register_nodes.py main <count> [gateway_account_index] --network anvil

Registers the deterministic dev node keys 0..count-1 (chainml.chain.keys) behind brownie's
``accounts[gateway_account_index]`` (default 9) as their gateway, from ``accounts[0]`` (the
admin), on the ledger of the deployments file in CHAINML_DATA_DIR. Nodes already registered
are skipped, so the script can be re-run.
"""

from __future__ import annotations

from brownie import ChainMLLedger, accounts

from chainml.chain.deployments import deployments_path, load_deployments
from chainml.chain.keys import dev_node_accounts
from chainml.chain.types import CODEC_RAW, ZERO32
from chainml.errors import ConfigError
from chainml.paths import data_dir


def main(count: int = 10, gateway_index: int = 9) -> int:
    path = deployments_path(data_dir())
    deployments = load_deployments(path)
    if deployments is None:
        raise ConfigError(f"nothing deployed yet ({path} is missing); run scripts/deploy.py")
    ledger = ChainMLLedger.at(deployments.address("ChainMLLedger"))
    gateway = accounts[int(gateway_index)]
    nodes = [n.address for n in dev_node_accounts(int(count))]
    new = [n for n in nodes if not ledger.nodeInfo(n)["registered"]]
    if new:
        profiles = [(ZERO32, CODEC_RAW)] * len(new)
        ledger.registerNodes(new, profiles, gateway, {"from": accounts[0]})
    print(
        f"registered {len(new)} new nodes (of {count}) behind gateway {gateway}; "
        f"{ledger.nodeCount()} registered in total"
    )
    return len(new)
