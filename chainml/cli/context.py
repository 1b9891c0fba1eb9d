"""State shared by every command: the data directory and output settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from chainml.paths import data_dir

console = Console()
err_console = Console(stderr=True)


@dataclass(frozen=True)
class CliContext:
    data_dir: Path
    verbose: bool = False


def cli_context(ctx: typer.Context) -> CliContext:
    """The context the root callback built (or a default one when a command runs alone)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliContext) else CliContext(data_dir=data_dir())
