"""``chainml ipfs up|down|status``: the local js-ipfs node (content commands live beside it)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chainml.cli.context import cli_context, console
from chainml.cli.ipfs_content import add, cat, export, import_car
from chainml.services.ipfs import LocalIpfsNode

app = typer.Typer(help="Run the local IPFS node and move content in and out.", no_args_is_help=True)
app.command("add")(add)
app.command("cat")(cat)
app.command("export")(export)
app.command("import")(import_car)


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="RPC API port on 127.0.0.1 (default: a free one).")
    ] = None,
) -> None:
    """Start the offline js-ipfs node; its repo (and pins) persist in the data directory."""
    info = LocalIpfsNode(cli_context(ctx).data_dir).up(port=port)
    console.print(f"ipfs up: RPC API at {info.api_url} (pid {info.pid})", highlight=False)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the IPFS node this data directory started (its repo is kept)."""
    info = LocalIpfsNode(cli_context(ctx).data_dir).down()
    console.print(f"ipfs down (was pid {info.pid})" if info else "ipfs was not running")


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the RPC API address and peer id of the local IPFS node."""
    info = LocalIpfsNode(cli_context(ctx).data_dir).info()
    if as_json:
        payload = {"running": info is not None}
        if info:
            payload |= {"api_url": info.api_url, "pid": info.pid, "peer_id": info.peer_id}
        typer.echo(json.dumps(payload, indent=2))
        return
    if info is None:
        console.print("ipfs is not running (start it with `chainml ipfs up`)")
        raise typer.Exit(code=3)
    console.print(
        f"ipfs up: RPC API at {info.api_url}, pid {info.pid}, peer {info.peer_id}", highlight=False
    )
