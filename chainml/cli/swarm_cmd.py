"""``chainml swarm run``: a fleet of simulated devices learning together through the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from chainml.cli.context import cli_context, console
from chainml.storage.store import IPFS_ENV
from chainml.swarm.attacks import ATTACKS
from chainml.swarm.config import SwarmConfig
from chainml.swarm.harness import run_swarm as _run_swarm
from chainml.swarm.services import DEFAULT_VALIDATORS

app = typer.Typer(help="Run swarms of simulated MCU nodes.", no_args_is_help=True)


def run_swarm(config: SwarmConfig, **kwargs: Any) -> list[dict[str, Any]]:
    """``chainml.swarm.harness.run_swarm`` with the CLI's console (kept here for old imports:
    bench/ and the demo call it from this module)."""
    kwargs.setdefault("console", console)
    return _run_swarm(config, **kwargs)


def _mean(row: dict[str, Any], *path: str) -> float | None:
    value: Any = row
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def print_summary(rows: list[dict[str, Any]], every: int = 1) -> None:
    """One line per round (or per ``every`` rounds, plus the first and the last): both
    evaluation protocols on the round's new version, gas, bytes, energy and wall time."""
    table = Table(title="swarm summary (held-out tasks; MAML protocol: 5 shots, k SGD steps)")
    for column in ("round", "status", "version", "MAML k=0 → k=10", "device protocol",
                   "gas/node", "bytes/node", "energy/node (mJ)", "wall (s)"):  # fmt: skip
        table.add_column(column, justify="right")
    ordered = sorted(rows, key=lambda r: r["round"])
    for i, row in enumerate(ordered):
        if every > 1 and i not in (0, len(ordered) - 1) and row["round"] % every:
            continue
        before, after = (
            _mean(row, "heldout", "loss_before", "mean"),
            _mean(row, "heldout", "loss_after", "mean"),
        )
        device = _mean(row, "heldout", "device", "mean")
        bytes_node = _mean(row, "bytes_per_node", "mean")
        energy = _mean(row, "energy_per_node_j", "mean")
        committed = max(int(row.get("committed") or 0), 1)
        table.add_row(
            str(row["round"]),
            row["status"],
            str(row["version"]) if row["version"] is not None else "-",
            f"{before:.3f} → {after:.3f}" if before is not None and after is not None else "-",
            f"{device:.3f}" if device is not None else "-",
            f"{row['gas']['total'] // committed:,}",
            f"{bytes_node:,.0f}" if bytes_node is not None else "-",
            f"{energy * 1e3:.2f}" if energy is not None else "-",
            f"{row['wall_time_s']['total']:.1f}",
        )
    console.print(table)


@app.command("run")
def run(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(help="Number of simulated devices.")] = 50,
    rounds: Annotated[int, typer.Option(help="Rounds to run (resumes if already started).")] = 10,
    task: Annotated[
        str, typer.Option(help="sine, meter, vibration, coldchain, digits or gasdrift.")
    ] = "sine",
    mode: Annotated[str, typer.Option(help="direct, relayed or batched.")] = "batched",
    aggregation: Annotated[
        str,
        typer.Option(
            help="guard (collusion screen + centered clipping), mean, cclip, median, trimmed, krum."
        ),
    ] = SwarmConfig.aggregation,
    seed: Annotated[int, typer.Option(help="Seed for the fleet, data and keys.")] = 0,
    dropout: Annotated[float, typer.Option(help="Fraction of nodes absent per round.")] = 0.0,
    adversaries: Annotated[
        float, typer.Option(help="Fraction of adversarial nodes (needs --attack).")
    ] = 0.0,
    attack: Annotated[
        str | None,
        typer.Option(help=f"Attack the adversaries run: {', '.join(ATTACKS)}."),
    ] = None,
    event_driven: Annotated[
        bool | None,
        typer.Option(
            "--event-driven/--always-update",
            help="Spiking tasks (gasdrift): devices send only when their error crosses the "
            "trigger, or every round (default: the task's recipe, which sends every round).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes for the devices.")] = 2,
    executor: Annotated[
        str,
        typer.Option(
            envvar="CHAINML_EXECUTOR",
            help="Where device jobs run: `pool` (local processes), `ray` (a local Ray "
            "instance with --workers CPUs) or `ray:ADDRESS` (an existing Ray cluster).",
        ),
    ] = "pool",
    validators: Annotated[
        int, typer.Option(help="Validators, when the swarm deploys its own ledger.")
    ] = DEFAULT_VALIDATORS,
    run_dir: Annotated[
        Path | None, typer.Option(help="Where metrics go (default: <data dir>/runs/<name>).")
    ] = None,
    ipfs: Annotated[
        str, typer.Option(envvar=IPFS_ENV, help="`embedded` or a Kubo RPC API URL.")
    ] = "embedded",
    rpc_url: Annotated[
        str | None, typer.Option(envvar="CHAINML_RPC_URL", help="Chain (default: local chain).")
    ] = None,
) -> None:
    """Run (or resume) a swarm; rerunning the same command continues where it stopped."""
    config = SwarmConfig(
        nodes=nodes,
        rounds=rounds,
        task=task,
        mode=mode,  # type: ignore[arg-type]
        aggregation=aggregation,
        seed=seed,
        dropout=dropout,
        adversaries=adversaries,
        attack=attack,
        event_driven=event_driven,
    )
    data_dir = cli_context(ctx).data_dir
    name = f"{task}-{mode}-{aggregation}-n{nodes}-s{seed}" + (
        f"-{attack}{adversaries:g}" if attack else ""
    )
    run_dir = run_dir or data_dir / "runs" / name
    rows = run_swarm(
        config,
        data_dir=data_dir,
        run_dir=run_dir,
        rpc_url=rpc_url,
        ipfs=ipfs,
        workers=workers,
        validators=validators,
        executor_spec=executor,
    )
    print_summary(rows)
    console.print(f"run directory: {run_dir}", highlight=False)
