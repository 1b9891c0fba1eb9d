"""``chainml verify``: recompute every finalized version and check its CID."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.cli.context import cli_context, console
from chainml.cli.deploy_cmd import local_rpc_url
from chainml.errors import ConfigError
from chainml.protocol.verify import VersionCheck, verify_history
from chainml.storage.store import IPFS_ENV, open_store


def verify(
    ctx: typer.Context,
    rpc_url: Annotated[
        str | None, typer.Option(envvar="CHAINML_RPC_URL", help="Chain (default: local chain).")
    ] = None,
    deployments: Annotated[
        Path | None, typer.Option(help="Deployments file (default: <data dir>/deployments.json).")
    ] = None,
    ipfs: Annotated[
        str, typer.Option(envvar=IPFS_ENV, help="`embedded` or a Kubo RPC API URL.")
    ] = "embedded",
) -> None:
    """Replay the version history: print OK, or the first version whose aggregate differs."""
    data_dir = cli_context(ctx).data_dir
    path = deployments or deployments_path(data_dir)
    deployed = load_deployments(path)
    if deployed is None:
        raise ConfigError(f"no deployments file at {path}; deploy first or pass --deployments")
    w3 = Web3(Web3.HTTPProvider(rpc_url or local_rpc_url(data_dir), request_kwargs={"timeout": 60}))
    ledger = Ledger.from_deployments(w3, deployed)
    store = open_store(ipfs, data_dir)
    with Progress(
        TextColumn("verify"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        bar = progress.add_task("verify", total=max(ledger.current_version(), 1))

        def advance(_check: VersionCheck, total: int) -> None:
            progress.update(bar, advance=1, total=max(total, 1))

        checks = verify_history(ledger, store, deployed.block_number, advance)
    marks = {"corrupt": "CORRUPT BLOCK", "missing": "MISSING BLOCK", "mismatch": "MISMATCH"}
    for check in checks:
        mark = "[green]OK[/]" if check.ok else f"[bold red]{marks.get(check.kind, 'FAILED')}[/]"
        console.print(
            f"version {check.version} (round {check.round}) {check.weights_cid}: {mark} "
            f"{check.detail}",
            highlight=False,
        )
    if checks and not checks[-1].ok:
        raise typer.Exit(code=1)
    console.print(f"verify: OK ({len(checks)} finalized versions recomputed)")
