"""``build_report``: run directory in, ``report.html`` plus one PNG per plot out."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chainml.errors import ConfigError
from chainml.report.html import render_html
from chainml.report.plots import PLOTS, render_png
from chainml.report.rundir import load_run

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    plots: dict[str, Path]
    """PNG path by plot id."""


def build_report(
    run_dir: Path,
    out_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReportFiles:
    """Write the report of ``run_dir`` into ``out_dir`` (default ``run_dir/report``).

    ``progress`` is called with each plot's title before it is drawn (for a progress bar).
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create report directory {out}: {exc}") from exc
    images = []
    paths = {}
    for plot in PLOTS:
        if progress is not None:
            progress(plot.title)
        png = render_png(plot, run)
        paths[plot.id] = _write(out / f"{plot.id}.png", png)
        images.append((plot, png))
    html = _write(out / REPORT_NAME, render_html(run, images).encode("utf-8"))
    return ReportFiles(html=html, plots=paths)


def _write(path: Path, data: bytes) -> Path:
    """Atomic write: a reader never sees half a report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
