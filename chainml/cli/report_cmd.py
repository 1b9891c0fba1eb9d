"""``chainml report RUN_DIR``: the run's plots and a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chainml.cli.context import console, err_console


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A swarm run directory (holds rounds.jsonl).", show_default=False)
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", "-o", help="Where to write the report.", show_default="RUN_DIR/report"
        ),
    ] = None,
) -> None:
    """Write RUN_DIR's report: report.html (opens offline) plus one PNG per plot."""
    from chainml.report import PLOTS, build_report  # matplotlib only when a report is made

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("plotting", total=len(PLOTS))
        seen: list[str] = []

        def step(title: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(title)
            bar.update(task, description=f"plotting {title.lower()}")

        files = build_report(run_dir, out_dir, progress=step)
        bar.advance(task)
    console.print(f"report: {files.html}", highlight=False, soft_wrap=True)
    for plot_id, path in files.plots.items():
        console.print(f"  {plot_id}: {path}", highlight=False, soft_wrap=True)
