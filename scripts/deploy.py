"""brownie script: deploy the chainml contracts with brownie's accounts and contract containers.

    brownie run scripts/deploy.py --network anvil

(brownie's ``anvil`` network is a chain on 127.0.0.1:8545, e.g. ``chainml chain up --port
8545``; ``chainml deploy`` runs this same script against the local chain on any port.)

The deployment parameters come from ``chainml/chain/deploy_params.json``, the file the tests
deploy with too, or from the JSON file ``CHAINML_DEPLOY_PARAMS`` names (see
``chainml.chain.deploy.load_params``): the roles (dev account indices or addresses), the
reputation and security parameters, and version 0, either a stored CID or the seeded initial
model of a task. That model is stored first (in the embedded store of the data directory, or
the IPFS API in ``CHAINML_IPFS``), so ``chainml swarm run`` can start from it. The result goes
to ``<data dir>/deployments.json`` (``CHAINML_DATA_DIR``, default ``./.chainml``), which every
chainml command reads.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from brownie import ChainMLLedger, ChainMLVoting, accounts, chain
from brownie.network.account import Account

from chainml.chain.deploy import (
    DEV_PARAMS_FILE,
    PARAMS_ENV,
    DeployParams,
    GenesisModel,
    deployment_record,
    load_params,
)
from chainml.chain.deployments import Deployments, deployments_path, save_deployments
from chainml.chain.types import cid_abi
from chainml.paths import data_dir
from chainml.storage.cid import cid_str, cid_to_onchain
from chainml.storage.store import IPFS_ENV, Store, open_store


def deploy(params: DeployParams, deployer: Account) -> Deployments:
    """Deploy ChainMLLedger (which creates its ChainMLParams) and ChainMLVoting from
    ``deployer``, bind the voting contract, grant the roles, approve the gateways."""
    tx = {"from": deployer}
    ledger = ChainMLLedger.deploy(
        deployer,
        cid_abi(params.genesis_weights),
        cid_abi(params.genesis_metrics),
        params.reputation.as_abi(),
        params.security.as_abi(),
        tx,
    )
    voting = ChainMLVoting.deploy(ledger, tx)
    ledger.grantRole(ledger.VOTING_ROLE(), voting, tx)
    for account in params.aggregators:
        ledger.grantRole(ledger.AGGREGATOR_ROLE(), account, tx)
    for account in params.validators:
        ledger.grantRole(ledger.VALIDATOR_ROLE(), account, tx)
    for account in params.gateways:
        ledger.approveGateway(account, True, tx)
    admin = params.admin or deployer.address
    if admin != deployer.address:
        ledger.grantRole(ledger.DEFAULT_ADMIN_ROLE(), admin, tx)
        ledger.revokeRole(ledger.DEFAULT_ADMIN_ROLE(), deployer, tx)
    return deployment_record(
        chain_id=chain.id,
        ledger=ledger.address,
        voting=voting.address,
        params_contract=ledger.params(),
        deployer=deployer.address,
        admin=admin,
        block_number=ledger.tx.block_number,
        params=params,
    )


def store_genesis(model: GenesisModel, store: Store) -> str:
    """Store ``model``'s seeded initial weights (with its learning recipe); returns the CID."""
    from chainml.swarm.config import SwarmConfig
    from chainml.swarm.services import genesis_weights

    config = SwarmConfig(task=model.task, seed=model.seed)
    weights, _ = genesis_weights(config.task, config.seed, config.recipe())
    return cid_str(store.put(weights))


def deploy_to(params: DeployParams, store: Store, target: Path) -> Deployments:
    """Store the genesis model if the parameters name one, deploy from ``accounts[0]``, and
    write the deployments file ``target``."""
    if params.genesis_model is not None:
        genesis = store_genesis(params.genesis_model, store)
        params = replace(params, genesis_weights=cid_to_onchain(genesis))
        print(f"genesis weights ({params.genesis_model.task}, seed {params.genesis_model.seed}):"
              f" {genesis}")  # fmt: skip
    deployments = deploy(params, accounts[0])
    save_deployments(target, deployments)
    return deployments


def main(params_file: str | None = None) -> Deployments:
    path = Path(params_file or os.environ.get(PARAMS_ENV) or DEV_PARAMS_FILE)
    params = load_params(path, [a.address for a in accounts])
    where = data_dir()
    target = deployments_path(where)
    deployments = deploy_to(params, open_store(os.environ.get(IPFS_ENV, "embedded"), where), target)
    for name, address in sorted(deployments.contracts.items()):
        print(f"{name}: {address}")
    print(f"chain id {deployments.chain_id}; deployments written to {target}")
    return deployments
