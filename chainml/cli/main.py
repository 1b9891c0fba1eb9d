"""Entry point: global options, sub-apps, and turning ChainMLError into a clear message."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from chainml import __version__
from chainml.cli import (
    chain_cmd,
    console_cmd,
    demo_cmd,
    deploy_cmd,
    inspect_cmd,
    ipfs_cmd,
    report_cmd,
    swarm_cmd,
    verify_cmd,
)
from chainml.cli.context import CliContext, err_console
from chainml.errors import ChainMLError
from chainml.paths import DATA_DIR_ENV, data_dir

app = typer.Typer(
    name="chainml",
    help="Federated meta-learning for fleets of tiny devices, coordinated on Ethereum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(chain_cmd.app, name="chain")
app.add_typer(ipfs_cmd.app, name="ipfs")
app.command("demo")(demo_cmd.demo)
app.command("deploy")(deploy_cmd.deploy)
app.command("console")(console_cmd.console)
app.add_typer(swarm_cmd.app, name="swarm")
app.command("verify")(verify_cmd.verify)
app.add_typer(inspect_cmd.app, name="inspect")
app.command("report")(report_cmd.report)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chainml {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir_option: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar=DATA_DIR_ENV,
            help="Where chain state, the IPFS repo, deployments and runs live.",
            show_default="./.chainml",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """chainml: run a local ledger + IPFS, a swarm of simulated MCU nodes, and audit them."""
    resolved = data_dir(data_dir_option)
    # Sub-commands that declare their own --data-dir read the same environment variable.
    os.environ[DATA_DIR_ENV] = str(resolved)
    ctx.obj = CliContext(data_dir=resolved, verbose=verbose)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; ChainMLError becomes one line on stderr, code 1."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        # Standalone mode: typer reports usage errors itself and always ends in SystemExit.
        app(args=args, prog_name="chainml")
    except ChainMLError as exc:
        if verbose:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
