"""Each attack at 20% of the fleet: the round still finalizes, verify passes, and the
attackers end up with less reputation than honest nodes (or, for poisoned data, the model
stays close to the clean run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from statistics import mean

import pytest

from chainml.chain.types import ReputationParams
from chainml.cli.main import main
from chainml.swarm.config import SwarmConfig
from tests.swarm.conftest import SwarmEnv

NODES, ROUNDS = 15, 3


def node_rows(env: SwarmEnv, name: str = "run") -> list[dict]:
    return [json.loads(line) for line in (env.data_dir / "runs" / name / "nodes.jsonl").open()]


def run_attack(env: SwarmEnv, attack: str | None, fraction: float = 0.2) -> list[dict]:
    return env.run(
        SwarmConfig(
            nodes=NODES,
            rounds=ROUNDS,
            mode="batched",
            aggregation="trimmed",
            adversaries=fraction if attack else 0.0,
            attack=attack,
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "attack", ["sign_flip", "scale", "noise", "stale", "freeride", "replay", "sybil"]
)
def test_attackers_lose_reputation_and_history_verifies(
    attack: str, make_env: Callable[[str], SwarmEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(attack)
    rows = run_attack(env, attack)
    assert all(r["status"] == "finalized" for r in rows)
    last = [r for r in node_rows(env) if r["round"] == rows[-1]["round"]]
    bad = [r["reputation"] for r in last if r["adversary"]]
    good = [r["reputation"] for r in last if not r["adversary"]]
    assert len(bad) == 3
    assert mean(bad) < mean(good), (bad, good)
    assert main(["--data-dir", str(env.data_dir), "verify"]) == 0, capsys.readouterr().out


@pytest.mark.slow
def test_poisoned_labels_leave_the_model_close_to_the_clean_run(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    clean = run_attack(make_env("clean"), None)
    poisoned = run_attack(make_env("label_flip"), "label_flip")
    clean_loss = clean[-1]["heldout"]["loss_after"]["mean"]
    poisoned_loss = poisoned[-1]["heldout"]["loss_after"]["mean"]
    assert poisoned_loss <= 1.2 * clean_loss


def test_a_bad_aggregator_is_voted_down_every_round_and_penalized(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("bad-aggregator")
    rows = env.run(SwarmConfig(nodes=6, rounds=2, mode="relayed", attack="bad_aggregator"))
    assert [r["status"] for r in rows] == ["finalized", "finalized"]
    ledger = env.ledger()
    for row in rows:
        statuses = [ledger.proposal(e.proposal_id).status for e in ledger.proposals(row["round"])]
        assert statuses == [3, 2]  # rejected (tampered), then accepted (honest)
    aggregator = ledger.proposal(1).proposer
    # The aggregator is not a node, so its score starts at 0; each rejection costs it 100.
    assert ledger.reputation_of(aggregator) == -2 * ReputationParams().proposer_penalty


def test_relayed_gateway_drops_commitments_the_chain_would_refuse(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("stale-relayed")
    rows = env.run(SwarmConfig(nodes=10, rounds=2, mode="relayed", adversaries=0.2, attack="stale"))
    assert [r["status"] for r in rows] == ["finalized", "finalized"]
    assert rows[1]["committed"] == 8  # the two stale commitments never reached the chain
