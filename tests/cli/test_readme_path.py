"""The README's command-line path, as a new user types it: `chain up` -> `deploy` -> `swarm
run` -> `verify` -> `inspect versions` -> `chain down` (issue 13).

`deploy` used to set version 0 to the CID of empty content, which no store holds, so `swarm
run` refused to start. Now it stores the swarm's genesis (the seeded initial model with its
learning recipe) first and deploys with that CID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chainml.paths import PROJECT_ROOT
from chainml.protocol.payloads import version_recipe
from chainml.services.chain import LocalChain
from chainml.storage.cid import cid_str
from chainml.storage.store import open_store
from chainml.storage.unixfs import file_cid
from chainml.swarm.config import SwarmConfig
from chainml.swarm.services import genesis_weights

EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def chainml(data_dir: Path, *args: str, timeout: float = 900) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "chainml", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=data_dir.parent,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT), "COLUMNS": "200"},
    )
    assert proc.returncode == 0, f"chainml {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_chain_up_deploy_swarm_run_verify_inspect(tmp_path: Path) -> None:
    data_dir = tmp_path / ".chainml"
    try:
        chainml(data_dir, "chain", "up")
        out = chainml(data_dir, "deploy")
        genesis, _ = genesis_weights("sine", 0, SwarmConfig().recipe())
        expected = cid_str(file_cid(genesis))
        assert expected != EMPTY_CID and f"genesis weights (sine, seed 0): {expected}" in out
        versions = json.loads(chainml(data_dir, "inspect", "versions", "--json"))
        assert [v["weights"] for v in versions] == [expected]
        stored = open_store("embedded", data_dir).get(expected)  # v0 is content the store has
        assert stored == genesis and version_recipe(stored) == SwarmConfig().recipe()

        chainml(data_dir, "swarm", "run", "--nodes", "4", "--rounds", "1", "--workers", "1")
        out = chainml(data_dir, "verify")
        assert "verify: OK (1 finalized versions recomputed)" in out
        versions = json.loads(chainml(data_dir, "inspect", "versions", "--json"))
        assert [v["version"] for v in versions] == [0, 1]
        assert versions[1]["commitments"] == 4  # batched, the swarm's default mode
        chainml(data_dir, "chain", "down")
        assert LocalChain(data_dir).info() is None
    finally:
        LocalChain(data_dir).down()
