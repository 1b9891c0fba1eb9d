"""``chainml chain up|down|status``: the local Anvil (or Ganache) chain."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from chainml.cli.context import cli_context, console
from chainml.services.chain import ENGINES, LocalChain

app = typer.Typer(help="Start, stop and inspect the local chain.", no_args_is_help=True)


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="TCP port on 127.0.0.1 (default: a free one).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help=f"Chain engine: {' or '.join(ENGINES)} (default: anvil, or the "
            "engine this data directory already holds)."
        ),
    ] = None,
) -> None:
    """Start the local chain; its state persists in the data directory across down/up."""
    chain = LocalChain(cli_context(ctx).data_dir)
    info = chain.up(port=port, engine=engine)
    console.print(f"chain up: {info.engine} at {info.url} (pid {info.pid})", highlight=False)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the chain this data directory started (its state is kept)."""
    info = LocalChain(cli_context(ctx).data_dir).down()
    console.print(f"chain down (was pid {info.pid})" if info else "chain was not running")


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the chain id, head block and deployed contract addresses."""
    result = LocalChain(cli_context(ctx).data_dir).status()
    if as_json:
        payload: dict[str, object] = {"running": result is not None}
        if result is not None:
            payload |= {
                "engine": result.info.engine,
                "url": result.info.url,
                "pid": result.info.pid,
                "chain_id": result.chain_id,
                "block_number": result.block_number,
                "contracts": result.deployments.contracts if result.deployments else {},
            }
        typer.echo(json.dumps(payload, indent=2))
        return
    if result is None:
        console.print("chain is not running (start it with `chainml chain up`)")
        raise typer.Exit(code=3)
    table = Table(title="local chain", show_header=False)
    table.add_row("engine", result.info.engine)
    table.add_row("rpc url", result.info.url)
    table.add_row("pid", str(result.info.pid))
    table.add_row("chain id", str(result.chain_id))
    table.add_row("block number", str(result.block_number))
    console.print(table)
    if result.deployments is None or not result.deployments.contracts:
        console.print("no contracts deployed yet (run `make deploy`)")
        return
    contracts = Table(title="deployed contracts")
    contracts.add_column("contract")
    contracts.add_column("address")
    for name, address in sorted(result.deployments.contracts.items()):
        contracts.add_row(name, address)
    console.print(contracts)
