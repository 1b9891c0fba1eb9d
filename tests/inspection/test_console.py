"""`chainml console`: brownie's console with the deployed contracts ready as objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chainml.cli.deploy_cmd import run_deploy_script
from chainml.services.chain import LocalChain


def test_console_has_the_deployed_contracts_ready(tmp_path: Path) -> None:
    chain = LocalChain(tmp_path)
    info = chain.up()
    try:
        deployments = run_deploy_script(info.url, tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "chainml", "--data-dir", str(tmp_path), "console"],
            input='print("LEDGER", ledger.address, ledger.currentVersion(), voting.address)\n',
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        chain.down()
    ledger = deployments.address("ChainMLLedger")
    voting = deployments.address("ChainMLVoting")
    assert f"LEDGER {ledger} 0 {voting}" in result.stdout, result.stdout[-2000:] + result.stderr
