"""``chainml verify``: recompute every finalized version and check its CID."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from chainml.chain.client import Ledger
from chainml.chain.connect import connect
from chainml.chain.deployments import deployments_path
from chainml.cli.context import cli_context, console
from chainml.cli.deploy_cmd import local_rpc_url
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
    """Replay the version history: print OK, or the first version that fails a check.

    A version fails if a block it rests on is corrupt or missing, or if its recomputed
    aggregate, reputation table or metrics file differs from what the chain records."""
    data_dir = cli_context(ctx).data_dir
    url = rpc_url or local_rpc_url(data_dir)
    source = connect(url, deployments or deployments_path(data_dir), reader=Ledger, timeout=60)
    ledger: Ledger = source.reader  # type: ignore[assignment]
    store = open_store(ipfs, data_dir)
    with Progress(
        TextColumn("verify"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        bar = progress.add_task("verify", total=max(ledger.current_version(), 1))

        def advance(_check: VersionCheck, total: int) -> None:
            progress.update(bar, advance=1, total=max(total, 1))

        checks = verify_history(ledger, store, source.first_block, advance)
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
