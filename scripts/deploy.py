"""brownie script: deploy the chainml contracts and write the deployments file.

    brownie run scripts/deploy.py --network <network>

Reads CHAINML_DATA_DIR (where deployments.json goes; default ./.chainml) and optionally
CHAINML_DEPLOY_PARAMS (a JSON file, see chainml.chain.deploy.load_params). Without a params
file, dev account 1 becomes the aggregator and dev accounts 2-8 the validators, and version 0
is CHAINML_GENESIS_CID (the CID of the genesis version file, which ``chainml deploy`` stores
first: the seeded initial model with its learning recipe). The work is done by
chainml.chain.deploy.deploy, the same function the tests and the bench call.
"""

from __future__ import annotations

import os
from pathlib import Path

from brownie import accounts, network
from web3 import Web3

from chainml.chain.deploy import GENESIS_PLACEHOLDER, DeployParams, deploy, load_params
from chainml.chain.deployments import deployments_path, save_deployments
from chainml.paths import data_dir
from chainml.storage.cid import str_to_onchain

GENESIS_ENV = "CHAINML_GENESIS_CID"


def default_params() -> DeployParams:
    dev = [a.address for a in accounts]
    genesis = os.environ.get(GENESIS_ENV)
    return DeployParams(
        genesis_weights=str_to_onchain(genesis) if genesis else GENESIS_PLACEHOLDER,
        aggregators=tuple(dev[1:2]),
        validators=tuple(dev[2:9]),
    )


def main() -> None:
    params_file = os.environ.get("CHAINML_DEPLOY_PARAMS")
    params = load_params(Path(params_file)) if params_file else default_params()
    w3 = Web3(Web3.HTTPProvider(network.web3.provider.endpoint_uri))
    deployments = deploy(w3, accounts[0].address, params)
    target = deployments_path(data_dir())
    save_deployments(target, deployments)
    for name, address in sorted(deployments.contracts.items()):
        print(f"{name}: {address}")
    print(f"chain id {deployments.chain_id}; deployments written to {target}")
    print(
        "next: `chainml console` (brownie's console with `ledger` and `voting` ready), "
        "`chainml inspect contracts`, `chainml swarm run`"
    )
