"""Start-up cost: `chainml --help` imports neither torch nor web3, its listing matches the
commands, and `inspect`, the gateway and the challenger never load torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_utils import keccak
from web3 import Web3

from chainml.actors.keys import KEY_ENV
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.deployments import deployments_path, save_deployments
from chainml.cli.lazy import LazyGroup
from chainml.cli.main import main
from chainml.services.chain import ChainInfo

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
import chainml.actors.gateway, chainml.actors.challenger, chainml.actors.env
print("torch" in sys.modules)
"""

DAEMON_PROBE = """
import json, sys
from chainml.cli.main import main
data, url = sys.argv[1], sys.argv[2]
common = ["--data-dir", data]
codes = [
    main([*common, "challenger", "run", "--rpc-url", url, "--once"]),
    main([*common, "gateway", "run", "--rpc-url", url, "--mode", "relayed", "--once"]),
]
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules}))
"""


def test_inspect_and_the_actor_commands_load_without_torch() -> None:
    """`inspect` reads the chain (and batch leaves) only; the gateway and the challenger only
    relay and check signatures and Merkle leaves: none of them loads the learning stack."""
    out = subprocess.run(
        [sys.executable, "-c", INSPECT_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout[-500:]


def test_the_gateway_and_challenger_daemons_run_without_torch(
    tmp_path: Path, chain: ChainInfo, w3: Web3
) -> None:
    """A step of `chainml challenger run` and `chainml gateway run` (relayed) against a real
    deployment, in a fresh process that never imports torch."""
    deployments = deploy(w3, w3.eth.accounts[0], DeployParams(validators=(w3.eth.accounts[2],)))
    save_deployments(deployments_path(tmp_path), deployments)
    key = "0x" + keccak(text="chainml-startup-daemon").hex()
    result = subprocess.run(
        [sys.executable, "-c", DAEMON_PROBE, str(tmp_path), chain.url],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {KEY_ENV: key},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0], "torch": False}, result.stderr[-2000:]
