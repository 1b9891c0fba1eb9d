"""``chainml console``: brownie's console with the deployed contracts ready as objects."""

from __future__ import annotations

from typing import Annotated

import typer

from chainml.cli.context import cli_context
from chainml.cli.deploy_cmd import local_rpc_url


def console(
    ctx: typer.Context,
    rpc_url: Annotated[
        str | None, typer.Option(envvar="CHAINML_RPC_URL", help="Chain (default: local chain).")
    ] = None,
) -> None:
    """Open brownie's console with `ledger` and `voting` bound to the deployed contracts."""
    from chainml.chain.brownie_run import brownie_session

    url = rpc_url or local_rpc_url(cli_context(ctx).data_dir)
    with brownie_session(url) as session:
        from brownie._cli.console import Console

        script = session.script("console")
        ledger, voting = script.main()
        shell = Console(session.project, {"ledger": ledger, "voting": voting})
        shell.interact(banner="brownie console: `ledger` and `voting` are ready", exitmsg="")
