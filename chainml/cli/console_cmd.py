"""``chainml console``: brownie's console with the deployed contracts ready as objects."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from chainml.chain.brownie_deploy import (
    NETWORK_ID,
    brownie_env,
    brownie_project_dir,
    client_engine,
)
from chainml.cli.context import cli_context
from chainml.cli.deploy_cmd import local_rpc_url


def console(
    ctx: typer.Context,
    rpc_url: Annotated[
        str | None, typer.Option(envvar="CHAINML_RPC_URL", help="Chain (default: local chain).")
    ] = None,
) -> None:
    """Open `brownie console` with `ledger` and `voting` bound to the deployed contracts."""
    data_dir = cli_context(ctx).data_dir
    url = rpc_url or local_rpc_url(data_dir)
    env = brownie_env(data_dir, url, client_engine(url))
    brownie = str(Path(sys.executable).with_name("brownie"))
    os.chdir(brownie_project_dir())
    argv = [brownie, "run", "scripts/console.py", "--network", NETWORK_ID, "--interactive"]
    os.execve(brownie, argv, env)
