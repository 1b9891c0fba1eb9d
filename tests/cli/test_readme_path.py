"""The README's command line, typed as a new user on a fresh machine types it (issue 13).

Every command README.md documents (the two make commands aside) runs here as written, with
``.venv/bin/chainml`` (the console script), in a fresh working directory whose default data
directory is ``./.chainml``, and with an empty HOME (no ``~/.brownie``, no caches):

- ``chain up|status|down``, ``ipfs up|status|down``, ``ipfs add|cat|export|import`` (embedded
  and ``--ipfs URL``), ``deploy``, ``swarm run`` (the README's own alie example), ``verify``,
  ``inspect contracts|nodes|versions|rounds|events|node ADDRESS`` (tables and ``--json``),
  ``report RUN_DIR``, ``export VERSION --target cortex-m4 --out DIR``, ``console``, ``demo``;
- ``validator|aggregator|gateway|challenger run`` with the README's flags run as separate
  processes in tests/actors/test_daemons.py, and ``brownie run scripts/deploy.py --network
  anvil`` in tests/contracts/test_brownie_deploy.py.

The first bug this caught: ``deploy`` set version 0 to the CID of empty content, which no store
holds, so ``swarm run`` refused to start. ``deploy`` stores the task's seeded genesis first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.paths import PROJECT_ROOT
from chainml.protocol.payloads import version_recipe
from chainml.services.chain import LocalChain
from chainml.services.ipfs import LocalIpfsNode
from chainml.storage.cid import cid_str
from chainml.storage.store import open_store
from chainml.storage.unixfs import file_cid
from chainml.swarm.config import SwarmConfig
from chainml.swarm.services import genesis_weights

EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CHAINML = str(Path(sys.executable).with_name("chainml"))
"""``.venv/bin/chainml``, as the README writes it."""


class User:
    """A new user in a fresh working directory with an empty HOME."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path / "work"
        self.home = tmp_path / "home"
        self.cwd.mkdir()
        self.home.mkdir()
        self.data = self.cwd / ".chainml"  # the default data directory
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CHAINML_") and k not in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR")
        } | {"HOME": str(self.home), "COLUMNS": "200"}

    def run(self, *args: str, timeout: float = 900, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [CHAINML, *args], cwd=self.cwd, env=self.env, input=stdin,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert proc.returncode == 0, f"chainml {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json"))


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    new = User(tmp_path)
    try:
        yield new
    finally:  # whatever failed, leave nothing running
        LocalChain(new.data).down()
        LocalIpfsNode(new.data).down()


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_readme_command_line(user: User, tmp_path: Path) -> None:
    # The local chain and IPFS node.
    assert "chain up: anvil at http://127.0.0.1:" in user.run("chain", "up")
    status = user.json("chain", "status")
    assert status["running"] and status["chain_id"] == 31337
    ipfs_url = user.run("ipfs", "up").split("RPC API at ")[1].split()[0]
    assert ipfs_url in user.run("ipfs", "status")

    # deploy: the brownie script, version 0 = the stored seeded genesis with its recipe.
    out = user.run("deploy")
    genesis, _ = genesis_weights("sine", 0, SwarmConfig().recipe())
    expected = cid_str(file_cid(genesis))
    assert expected != EMPTY_CID and f"genesis weights: {expected}" in out
    assert "ChainMLLedger" in out and (user.home / ".brownie").is_dir()
    assert [v["weights"] for v in user.json("inspect", "versions")] == [expected]
    stored = open_store("embedded", user.data).get(expected)
    assert stored == genesis and version_recipe(stored) == SwarmConfig().recipe()

    # The README's swarm example, as written; then verify, inspect, report, export.
    out = user.run("swarm", "run", "--nodes", "50", "--rounds", "10", "--adversaries", "0.2",
                   "--attack", "alie", timeout=1800)  # fmt: skip
    run_dir = user.data / "runs" / "sine-batched-guard-n50-s0-alie0.2"
    assert f"run directory: {run_dir}" in out.replace("\n", "")
    assert "verify: OK (10 finalized versions recomputed)" in user.run("verify")
    versions = user.json("inspect", "versions")
    assert [v["version"] for v in versions] == list(range(11))
    rows = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    committed = [r["committed"] for r in rows]
    assert len(committed) == 10 and min(committed) > 0
    assert [v["commitments"] for v in versions[1:]] == committed  # batched: from the leaves
    nodes = user.json("inspect", "nodes")
    assert len(nodes) == 50 and sum(n["commitments"] for n in nodes) == sum(committed)
    node = nodes[0]["address"]
    for view in (("contracts",), ("nodes",), ("versions",), ("rounds",), ("events",)):
        assert user.run("inspect", *view).strip()
    assert node in user.run("inspect", "node", node)
    assert user.json("inspect", "node", node)["node"]["commitments"] == nodes[0]["commitments"]
    assert user.json("inspect", "rounds", "--round", "10")[0]["status"] == "finalized"
    assert "report.html" in user.run("report", str(run_dir.relative_to(user.cwd)))
    assert (run_dir / "report" / "report.html").exists()
    out = user.run("export", "10", "--target", "cortex-m4", "--out", "export", timeout=1800)
    assert (user.cwd / "export").is_dir() and any((user.cwd / "export").iterdir()), out

    # Content in and out, embedded and through the node's RPC API (same CIDs).
    sample = user.cwd / "hello.txt"
    sample.write_text("hello world\n")
    hello = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert user.run("ipfs", "add", "hello.txt").strip() == hello
    assert user.run("ipfs", "add", "hello.txt", "--ipfs", ipfs_url).strip() == hello
    assert user.run("ipfs", "cat", hello, "--ipfs", ipfs_url) == "hello world\n"
    user.run("ipfs", "export", hello, "hello.car")
    assert user.run("ipfs", "import", "hello.car", "--ipfs", ipfs_url).strip() == hello

    # brownie's console with the deployed contracts.
    out = user.run("console", stdin='print("VERSION", ledger.currentVersion())\n')
    assert "VERSION 10" in out

    # Stop both; state persists.
    user.run("chain", "down")
    user.run("ipfs", "down")
    assert user.json("chain", "status")["running"] is False
    assert LocalChain(user.data).info() is None and LocalIpfsNode(user.data).info() is None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_demo_command(user: User) -> None:
    """``chainml demo`` (what ``make demo`` runs), small: chain, IPFS, brownie deploy, swarm,
    verify, report and the final weights on the IPFS node under the same CID."""
    out = user.run("demo", "--nodes", "5", "--rounds", "2", timeout=1800)
    assert "verify: OK (2 finalized versions recomputed)" in out
    assert "(same CID)" in out and "report:" in out
    assert (user.data / "runs" / "demo" / "report" / "report.html").exists()
    assert user.json("chain", "status")["running"]  # the demo leaves its chain up
    assert user.json("ipfs", "status")["running"]
    # Rerunning resumes (here: nothing left to do) and shows the results again.
    assert "verify: OK (2 finalized versions recomputed)" in user.run("demo", "--nodes", "5",
                                                                       "--rounds", "2")  # fmt: skip
    assert PROJECT_ROOT.is_dir()
