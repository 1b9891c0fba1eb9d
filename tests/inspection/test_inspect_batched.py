"""`inspect versions`, `nodes` and `node` count batched commitments (issue 13).

A Merkle batch names its nodes only in the leaves file on IPFS; the event log has no
``CommitmentAccepted`` for them. Counting events alone (what these views did) shows 0 for a
batched round whose chain ``commitCount`` is 5; the views now add the batch counts from the log
and read the leaves file for who committed and with which losses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.cli.main import main
from chainml.services.chain import LocalChain
from chainml.swarm.config import SwarmConfig
from chainml.swarm.harness import run_swarm

NODES = 5


@pytest.fixture(scope="module")
def batched_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("batched-for-inspect")
    chain = LocalChain(data_dir)
    info = chain.up()
    try:
        run_swarm(
            SwarmConfig(nodes=NODES, rounds=1, mode="batched"),
            data_dir=data_dir,
            run_dir=data_dir / "run",
            rpc_url=info.url,
            ipfs="embedded",
            workers=1,
            show_progress=False,
        )
        yield data_dir
    finally:
        chain.down()


def inspect(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> object:
    code = main(["--data-dir", str(data_dir), "inspect", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_the_chain_records_the_batch_and_no_commitment_events(
    batched_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Why counting events was wrong: 5 on chain, 0 ``CommitmentAccepted`` events."""
    rounds = inspect(capsys, batched_dir, "rounds")
    assert rounds[0]["commitments"] == NODES
    events = inspect(capsys, batched_dir, "events", "--round", "1")
    names = [e["name"] for e in events]
    assert "CommitmentAccepted" not in names and names.count("BatchPosted") == 1


def test_versions_count_batched_commitments_and_their_losses(
    batched_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = inspect(capsys, batched_dir, "versions")
    assert [v["commitments"] for v in versions] == [0, NODES]
    assert versions[1]["included"] == NODES
    assert versions[1]["mean_loss_before"] > 0 and versions[1]["mean_loss_after"] > 0


def test_nodes_and_node_count_each_batched_commitment(
    batched_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = inspect(capsys, batched_dir, "nodes")
    assert len(nodes) == NODES
    assert [n["commitments"] for n in nodes] == [1] * NODES
    one = inspect(capsys, batched_dir, "node", nodes[0]["address"])
    assert one["node"]["commitments"] == 1
    (round_1,) = [r for r in one["rounds"] if r["round"] == 1]
    assert round_1["committed"] is True and round_1["update"].startswith("bafk")


def test_without_the_leaves_file_versions_still_count(
    batched_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Another data dir's (empty) store: the counts come from the log, the names are unknown."""
    args = ["--data-dir", str(tmp_path), "inspect", "versions", "--json"]
    args += ["--deployments", str(batched_dir / "deployments.json")]
    info = LocalChain(batched_dir).info()
    assert info is not None
    code = main([*args, "--rpc-url", info.url])
    out = capsys.readouterr().out
    assert code == 0
    assert [v["commitments"] for v in json.loads(out)] == [0, NODES]
