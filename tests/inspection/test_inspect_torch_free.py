"""Every ``chainml inspect`` command runs without importing torch, batched rounds included
(their leaves, voted lists and reputation tables are read through the torch-free codecs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.inspection.swarm_chain import SwarmChain

PROBE = """
import json, sys
from chainml.cli.main import main
target, commands = json.loads(sys.argv[1]), json.loads(sys.argv[2])
codes = [main(["--data-dir", target["data"], "inspect", *c, "--rpc-url", target["url"],
               "--deployments", target["deployments"], *c_extra])
         for c, c_extra in commands]
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules}))
"""


def test_inspect_commands_do_not_import_torch(swarm_chain: SwarmChain, tmp_path: Path) -> None:
    ipfs = ["--ipfs", swarm_chain.ipfs_url]
    node = swarm_chain.nodes[0].address
    commands = [
        (["contracts", "--json"], []),
        (["nodes", "--json"], ipfs),
        (["versions", "--json"], ipfs),
        (["rounds", "--json"], []),
        (["events", "--json"], []),
        (["node", node, "--json"], ipfs),
    ]
    target = {
        "data": str(tmp_path),
        "url": swarm_chain.url,
        "deployments": str(swarm_chain.deployments_file),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(target), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0] * len(commands), "torch": False}, result.stderr[-2000:]
