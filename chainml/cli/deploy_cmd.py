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
) -> None:
    """Deploy the contracts with `brownie run scripts/deploy.py`; write deployments.json."""
    data_dir = cli_context(ctx).data_dir
    url = rpc_url or local_rpc_url(data_dir)
    with console.status(f"compiling and deploying with brownie to {url} ..."):
        deployments = run_deploy_script(url, data_dir, params)
    print_deployments(deployments)
