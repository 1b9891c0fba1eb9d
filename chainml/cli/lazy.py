"""A command group that imports a command's module only when that command runs.

Importing every command module at start-up pulls in torch and web3 (about 2 s and 270 MB)
before even ``chainml --help`` can answer. The group lists each command from a one-line help
held here, and resolves the real typer command or sub-app on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    """Where a command lives: ``module:attr`` (a typer app or a command function) and its
    one-line help for listings."""

    module: str
    attr: str
    help: str

    def load(self, name: str) -> click.Command:
        target = getattr(importlib.import_module(self.module), self.attr)
        if isinstance(target, typer.Typer):
            command: click.Command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(name)(target)
            command = typer.main.get_command(single)
        command.name = name
        return command


class _Listing(click.Command):
    """What ``--help`` shows for a command that has not been imported."""

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name=name, help=help_text, short_help=help_text)


class LazyGroup(TyperGroup):
    lazy: ClassVar[dict[str, Lazy]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = self.lazy.get(cmd_name)
        return _Listing(cmd_name, entry.help) if entry else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name in self.lazy and name not in self.commands:
            self.commands[name] = self.lazy[name].load(name)
        return super().resolve_command(ctx, args)
