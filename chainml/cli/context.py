"""State shared by every command: the data directory and output settings."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from chainml.paths import data_dir

PIPED_WIDTH = 160
"""Rich wraps tables at 80 columns when output is not a terminal, which breaks CIDs and rows
in logs and pipes; piped output gets this width instead (``COLUMNS`` still wins)."""


def _width(stream: object) -> int | None:
    tty = getattr(stream, "isatty", lambda: False)()
    return None if tty or "COLUMNS" in os.environ else PIPED_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


@dataclass(frozen=True)
class CliContext:
    data_dir: Path
    verbose: bool = False


def cli_context(ctx: typer.Context) -> CliContext:
    """The context the root callback built (or a default one when a command runs alone)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliContext) else CliContext(data_dir=data_dir())
