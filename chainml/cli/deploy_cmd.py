"""``chainml deploy``: deploy the contracts with the brownie deploy script, on the local chain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from chainml.chain.deployments import Deployments, deployments_path
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
        typer.Option(
            help="Deployment parameters JSON (roles, genesis, reputation, security); "
            "default: chainml/chain/deploy_params.json."
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Version 0 is this task's seeded initial model.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="The genesis model's seed.")] = None,
    ipfs: Annotated[
        str,
        typer.Option(envvar=IPFS_ENV, help="Where the genesis weights go: `embedded` or a URL."),
    ] = "embedded",
) -> None:
    """Deploy the contracts with the brownie script scripts/deploy.py; write deployments.json."""
    data_dir = cli_context(ctx).data_dir
    url = rpc_url or local_rpc_url(data_dir)
    deployments = run_deploy_script(url, data_dir, params, task=task, seed=seed, ipfs=ipfs)
    print_deployments(deployments)
    console.print(f"genesis weights: {genesis_cid(deployments)}", highlight=False)


def genesis_cid(deployments: Deployments) -> str:
    """The CID of version 0 as the deployment recorded it."""
    from chainml.storage.cid import onchain_to_str

    genesis = deployments.extra["genesis_weights"]
    return onchain_to_str(bytes.fromhex(genesis["digest"][2:]), int(genesis["codec"]))  # type: ignore[index]


def run_deploy_script(
    rpc_url: str,
    data_dir: Path,
    params: Path | None = None,
    *,
    task: str | None = None,
    seed: int | None = None,
    ipfs: str = "embedded",
) -> Deployments:
    """Run scripts/deploy.py with brownie against ``rpc_url``: parameters from ``params``
    (default: the development parameters), the genesis model overridden by ``task``/``seed``."""
    from dataclasses import replace

    from chainml.chain.brownie_run import brownie_session
    from chainml.chain.deploy import DEV_PARAMS_FILE, GenesisModel, load_params
    from chainml.storage.store import open_store

    with (
        console.status(f"deploying with brownie (scripts/deploy.py) to {rpc_url} ..."),
        brownie_session(rpc_url, silent=True) as session,
    ):
        from brownie import accounts

        chosen = load_params(params or DEV_PARAMS_FILE, [a.address for a in accounts])
        if task is not None or seed is not None:
            model = chosen.genesis_model or GenesisModel()
            model = GenesisModel(task or model.task, model.seed if seed is None else seed)
            chosen = replace(chosen, genesis_model=model)
        store = open_store(ipfs, data_dir)
        return session.script("deploy").deploy_to(chosen, store, deployments_path(data_dir))
