"""The library entry point for a swarm: connect, compose the actors, run or resume the rounds.

``run_swarm`` is what ``chainml swarm run``, ``chainml demo``, the tests and the benches call.
It builds the services (chain, deployment, store), the executor for the devices and the
validators' recomputations, and a :class:`~chainml.swarm.orchestrator.Swarm` harness, and
shows progress bars when asked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chainml.errors import ServiceError
from chainml.swarm.config import SwarmConfig
from chainml.swarm.executor import make_executor
from chainml.swarm.node_job import warm_up
from chainml.swarm.orchestrator import Swarm
from chainml.swarm.services import DEFAULT_VALIDATORS, connect


def local_rpc_url(data_dir: Path) -> str:
    """The RPC URL of the chain this data directory runs, or a clear error if it is down."""
    from chainml.services.chain import LocalChain

    info = LocalChain(data_dir).info()
    if info is None:
        raise ServiceError(
            f"no local chain is running for data dir {data_dir}; start it with "
            "`chainml chain up` or pass --rpc-url"
        )
    return info.url


def run_swarm(
    config: SwarmConfig,
    *,
    data_dir: Path,
    run_dir: Path,
    rpc_url: str | None,
    ipfs: str,
    workers: int,
    validators: int = DEFAULT_VALIDATORS,
    show_progress: bool = True,
    executor_spec: str = "pool",
    console: Console | None = None,
    compose: Callable[[Swarm], None] | None = None,
) -> list[dict[str, Any]]:
    """Connect, run or resume the swarm (with progress bars), and return its round rows.

    ``compose`` may change the harness's actors before the run (e.g. wrap validators in an
    attack: ``chainml.swarm.validator_attacks.composer``)."""
    services = connect(
        rpc_url or local_rpc_url(data_dir),
        data_dir,
        ipfs,
        task=config.task,
        seed=config.seed,
        validators=validators,
        recipe=config.recipe(),
    )
    executor = make_executor(workers, executor_spec, warm_up=warm_up)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, disable=not show_progress) as progress:
            overall = progress.add_task("rounds", total=config.rounds, phase="")
            current = progress.add_task("round", total=1, phase="starting")

            def report(phase: str, done: int, total: int) -> None:
                progress.update(current, completed=done, total=max(total, 1), phase=phase)

            def on_round(round_id: int, done: int) -> None:
                progress.update(overall, completed=done)
                progress.update(current, description=f"round {round_id}", completed=0)

            swarm = Swarm(config, services, run_dir, executor, progress=report)
            if compose is not None:
                compose(swarm)
            rows = swarm.run(on_round)
            progress.update(overall, completed=config.rounds)
        return rows
    finally:
        executor.close()
