"""`chainml --help` must not pay for torch or web3, and its listing must match the commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chainml.cli.lazy import LazyGroup
from chainml.cli.main import main

PROBE = """
import sys
from chainml.cli.main import main
code = main(["--help"])
print(code, "torch" in sys.modules, "web3" in sys.modules)
"""


def test_help_imports_neither_torch_nor_web3() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False False", out.stdout[-500:]


@pytest.mark.parametrize("name", sorted(LazyGroup.lazy))
def test_listing_matches_the_command_itself(name: str) -> None:
    """The one-line help in the listing is the command's own first help line (no drift)."""
    command = LazyGroup.lazy[name].load(name)
    own = " ".join((command.help or "").split("\n\n")[0].split())
    assert own == LazyGroup.lazy[name].help


def test_every_command_still_runs_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name in LazyGroup.lazy:
        assert main([name, "--help"]) == 0, name
    assert main(["no-such-command"]) != 0
    assert "No such command" in capsys.readouterr().err


INSPECT_PROBE = """
import sys
import chainml.cli.inspect_cmd, chainml.cli.actors_cmd, chainml.inspection.batches
print("torch" in sys.modules)
"""


def test_inspect_and_the_actor_commands_load_without_torch() -> None:
    """`inspect` reads the chain (and batch leaves) only; the daemons load torch when they run."""
    out = subprocess.run(
        [sys.executable, "-c", INSPECT_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout[-500:]
