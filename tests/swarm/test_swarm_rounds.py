"""Full rounds on a real Anvil chain: learning, verification, the three modes, both stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chainml.cli.main import main
from chainml.services.ipfs import IpfsInfo
from chainml.swarm.config import SwarmConfig
from tests.swarm.conftest import SwarmEnv


def test_held_out_loss_drops_over_rounds_and_verify_is_ok(
    make_env: Callable[[str], SwarmEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env("learn")
    rows = env.run(SwarmConfig(nodes=24, rounds=4, mode="batched", aggregation="mean"), workers=2)
    assert [r["status"] for r in rows] == ["finalized"] * 4
    assert [r["version"] for r in rows] == [1, 2, 3, 4]
    # Four rounds are enough for the device protocol to improve; the MAML protocol needs more
    # (tests/swarm/test_learning.py checks both over a longer run).
    device = [r["heldout"]["device"]["mean"] for r in rows]
    assert device[-1] < device[0], device
    assert all(r["committed"] == 24 and r["included"] + r["excluded"] == 24 for r in rows)
    assert all(r["gas"]["total"] > 0 and r["bytes_per_node"]["mean"] > 0 for r in rows)

    code = main(["--data-dir", str(env.data_dir), "verify"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verify: OK (4 finalized versions recomputed)" in out


def test_relayed_and_batched_give_the_same_versions_as_direct(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    cids = {}
    for mode in ("direct", "relayed", "batched"):
        env = make_env(mode)
        env.run(SwarmConfig(nodes=6, rounds=2, mode=mode, aggregation="trimmed", eval_tasks=100))
        cids[mode] = env.version_cids()
    assert len(cids["direct"]) == 3
    assert cids["direct"] == cids["relayed"] == cids["batched"]
    assert len(set(cids["direct"])) == 3  # every round produced new weights


def test_kubo_backend_runs_and_verifies(
    make_env: Callable[[str], SwarmEnv],
    ipfs_node: IpfsInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = make_env("kubo")
    rows = env.run(SwarmConfig(nodes=5, rounds=2, mode="relayed"), ipfs=ipfs_node.api_url)
    assert [r["status"] for r in rows] == ["finalized", "finalized"]
    embedded = make_env("embedded-twin")
    embedded.run(SwarmConfig(nodes=5, rounds=2, mode="relayed"))
    assert env.version_cids() == embedded.version_cids()
    code = main(["--data-dir", str(env.data_dir), "verify", "--ipfs", ipfs_node.api_url])
    assert code == 0, capsys.readouterr().out


def test_verify_fails_clearly_without_the_ipfs_data(
    make_env: Callable[[str], SwarmEnv], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = make_env("history")
    env.run(SwarmConfig(nodes=4, rounds=1, mode="relayed"))
    empty = tmp_path / "someone-else"  # same chain and deployments, but none of the IPFS data
    code = main(
        [
            "--data-dir", str(empty),
            "verify",
            "--rpc-url", env.rpc_url,
            "--deployments", str(env.data_dir / "deployments.json"),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "version 1 (round 1)" in out and "MISSING BLOCK" in out and "stored block missing" in out
    assert env.version_cids()[1] in out  # names the block at fault
