"""`chainml inspect` against a chain that a real swarm populated (batched, with an attacker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.cli.main import main
from chainml.cli.swarm_cmd import run_swarm
from chainml.services.chain import LocalChain
from chainml.swarm.config import SwarmConfig

NODES, ROUNDS = 8, 2


@pytest.fixture(scope="module")
def swarm_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("swarm-for-inspect")
    chain = LocalChain(data_dir)
    info = chain.up()
    try:
        run_swarm(
            SwarmConfig(
                nodes=NODES,
                rounds=ROUNDS,
                mode="relayed",
                adversaries=0.25,
                attack="scale",
                aggregation="trimmed",  # a robust rule (the swarm's default is now "mean")
            ),
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


def test_versions_form_a_lineage_with_cids(
    swarm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = inspect(capsys, swarm_dir, "versions")
    assert [v["version"] for v in versions] == [0, 1, 2]
    assert [v["parent"] for v in versions] == [None, 0, 1]
    assert all(v["weights"].startswith("bafk") for v in versions)
    assert versions[2]["metrics"] and versions[1]["round"] == 1


def test_rounds_show_proposals_and_votes(
    swarm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = inspect(capsys, swarm_dir, "rounds")
    assert [r["status"] for r in rounds] == ["finalized", "finalized"]
    assert all(r["commitments"] == NODES for r in rounds)
    assert all(p["status"] == "accepted" for r in rounds for p in r["proposals"])


def test_nodes_show_the_attackers_losing_reputation(
    swarm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = inspect(capsys, swarm_dir, "nodes")
    assert len(nodes) == NODES
    rows = [json.loads(line) for line in (swarm_dir / "run" / "nodes.jsonl").open()]
    adversaries = {r["node"].lower() for r in rows if r["adversary"]}
    reputation = {n["address"].lower(): n["reputation"] for n in nodes}
    assert max(reputation[a] for a in adversaries) < min(
        v for k, v in reputation.items() if k not in adversaries
    )
    one = next(iter(adversaries))
    history = inspect(capsys, swarm_dir, "node", one)
    assert history and json.dumps(history).count("excluded") >= ROUNDS


def test_events_filter_by_round(swarm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = inspect(capsys, swarm_dir, "events", "--round", "2")
    names = {e["name"] for e in events}
    assert {"RoundOpened", "CommitmentAccepted", "RoundFinalized"} <= names
    assert all(e["args"].get("round", 2) == 2 for e in events if "round" in e["args"])


def test_contracts_list_role_holders(swarm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contracts = inspect(capsys, swarm_dir, "contracts")
    assert {c["name"] for c in contracts["contracts"]} == {"ChainMLLedger", "ChainMLVoting"}
    assert len(contracts["roles"]["validator"]) == 3
