"""Run reports: load a swarm run directory, draw its plots, write one self-contained HTML file."""

from chainml.report.build import REPORT_NAME, ReportFiles, build_report
from chainml.report.plots import PLOTS, Plot, render_png
from chainml.report.rundir import RunData, load_run

__all__ = [
    "PLOTS",
    "REPORT_NAME",
    "Plot",
    "ReportFiles",
    "RunData",
    "build_report",
    "load_run",
    "render_png",
]
