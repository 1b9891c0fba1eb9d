"""``chainml deploy``: compile and deploy the contracts with the brownie deploy script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from chainml.chain.brownie_deploy import run_deploy_script
from chainml.chain.deployments import Deployments
from chainml.cli.context import cli_context, console
from chainml.errors import ServiceError
from chainml.services.chain import LocalChain
from chainml.storage.store import IPFS_ENV


def local_rpc_url(data_dir: Path) -> str:
    """The RPC URL of the chain this data directory runs, or a clear error if it is down."""
    info = LocalChain(data_dir).info()
    if info is None:
        raise ServiceError(
            f"no local chain is running for data dir {data_dir}; start it with "
            "`chainml chain up` or pass --rpc-url"
        )
    return info.url


def print_deployments(deployments: Deployments) -> None:
    table = Table(title=f"deployed contracts (chain id {deployments.chain_id})")
    table.add_column("contract")
    table.add_column("address")
    for name, address in sorted(deployments.contracts.items()):
        table.add_row(name, address)
    console.print(table)


def deploy(
    ctx: typer.Context,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            envvar="CHAINML_RPC_URL", help="Chain to deploy to (default: the local chain)."
        ),
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(help="Deployment parameters JSON (roles, genesis CID, reputation)."),
    ] = None,
    task: Annotated[
        str, typer.Option(help="Without --params: the task whose seeded initial model is v0.")
    ] = "sine",
    seed: Annotated[int, typer.Option(help="Without --params: the genesis model's seed.")] = 0,
    ipfs: Annotated[
        str,
        typer.Option(envvar=IPFS_ENV, help="Where the genesis weights go: `embedded` or a URL."),
    ] = "embedded",
) -> None:
    """Deploy the contracts with `brownie run scripts/deploy.py`; write deployments.json."""
    data_dir = cli_context(ctx).data_dir
    url = rpc_url or local_rpc_url(data_dir)
    genesis = None
    if params is None:
        # Version 0 must be content a store holds: the swarm's genesis for --task and --seed,
        # whose file records the learning recipe every later version follows.
        from chainml.storage.cid import cid_str
        from chainml.storage.store import open_store
        from chainml.swarm.config import SwarmConfig
        from chainml.swarm.services import genesis_weights

        config = SwarmConfig(task=task, seed=seed)
        weights, _ = genesis_weights(config.task, config.seed, config.recipe())
        genesis = cid_str(open_store(ipfs, data_dir).put(weights))
    with console.status(f"compiling and deploying with brownie to {url} ..."):
        deployments = run_deploy_script(url, data_dir, params, genesis_cid=genesis)
    print_deployments(deployments)
    if genesis:
        console.print(f"genesis weights ({task}, seed {seed}): {genesis}", highlight=False)
