"""Entry point: global options, sub-apps, and turning ChainMLError into a clear message."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from chainml import __version__
from chainml.chain.artifacts import manifest
from chainml.cli.context import CliContext, err_console
from chainml.cli.lazy import Lazy, LazyGroup
from chainml.errors import ChainMLError
from chainml.paths import DATA_DIR_ENV, data_dir

# Each command's module is imported only when that command runs, so `chainml --help` and the
# light commands never pay for torch and web3. A test checks these one-line helps against the
# commands' own (see tests/foundation/test_cli_startup.py).
LazyGroup.lazy = {
    "chain": Lazy("chainml.cli.chain_cmd", "app", "Start, stop and inspect the local chain."),
    "ipfs": Lazy(
        "chainml.cli.ipfs_cmd", "app", "Run the local IPFS node and move content in and out."
    ),
    "demo": Lazy(
        "chainml.cli.demo_cmd",
        "demo",
        "Run the full local demo: chain, IPFS, brownie deploy, swarm, verify, report.",
    ),
    "deploy": Lazy(
        "chainml.cli.deploy_cmd",
        "deploy",
        "Deploy the contracts with the brownie script scripts/deploy.py; write deployments.json.",
    ),
    "console": Lazy(
        "chainml.cli.console_cmd",
        "console",
        "Open brownie's console with `ledger` and `voting` bound to the deployed contracts.",
    ),
    "swarm": Lazy("chainml.cli.swarm_cmd", "app", "Run swarms of simulated MCU nodes."),
    "validator": Lazy(
        "chainml.cli.actors_cmd",
        "validator_app",
        "Run a validator: recompute every proposal from chain and IPFS, commit and reveal its "
        "vote.",
    ),
    "aggregator": Lazy(
        "chainml.cli.actors_cmd",
        "aggregator_app",
        "Run an aggregator: open rounds, propose each round's aggregate, finalize, settle.",
    ),
    "gateway": Lazy(
        "chainml.cli.actors_cmd",
        "gateway_app",
        "Run a gateway: put the commitments nodes deliver to its inbox on chain.",
    ),
    "challenger": Lazy(
        "chainml.cli.actors_cmd",
        "challenger_app",
        "Run a challenger: check every batch leaf and challenge the invalid ones.",
    ),
    "verify": Lazy(
        "chainml.cli.verify_cmd",
        "verify",
        "Replay the version history: print OK, or the first version that fails a check.",
    ),
    "inspect": Lazy(
        "chainml.cli.inspect_cmd",
        "app",
        "Inspect a deployment: contracts, nodes, versions, rounds, events, one node.",
    ),
    "report": Lazy(
        "chainml.cli.report_cmd",
        "report",
        "Write RUN_DIR's report: report.html (opens offline) plus one PNG per plot.",
    ),
    "export": Lazy(
        "chainml.cli.export_cmd",
        "export",
        "Quantize a finalized version to int8 and emit a .tflite, C code and Cortex-M4 ELFs.",
    ),
}

app = typer.Typer(
    name="chainml",
    cls=LazyGroup,
    help="Federated meta-learning for fleets of tiny devices, coordinated on Ethereum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
        if args and not {"--help", "-h", "--version"} & set(args):
            manifest()  # every command says "run `make setup`" if the contracts changed since
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
