"""The fleet learns through the ledger: the outcome a user cares about, on a real Anvil chain.

One swarm run (a real chain, the embedded store, batched commitments, validators' votes) is
shared by the tests in this module; each checks one claim of the learning issue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.cli.swarm_cmd import run_swarm
from chainml.errors import IntegrityError
from chainml.meta.federated import ServerState
from chainml.meta.protocols import score
from chainml.meta.tasks import get_family
from chainml.protocol.evidence import gather_round
from chainml.protocol.payloads import decode_version, encode_weights
from chainml.protocol.recompute import compute_aggregate
from chainml.services.chain import LocalChain
from chainml.storage.cid import cid_str, onchain_to_str
from chainml.storage.store import Store, open_store
from chainml.swarm.config import SwarmConfig
from tests.swarm.conftest import SwarmEnv

NODES, ROUNDS = 16, 30


@dataclass
class LearningRun:
    data_dir: Path
    ledger: Ledger
    store: Store
    rows: list[dict[str, Any]]
    nodes: list[dict[str, Any]]

    def version_cid(self, version: int) -> str:
        return onchain_to_str(*self.ledger.version(version).weights)


@pytest.fixture(scope="module")
def learning_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LearningRun]:
    data_dir = tmp_path_factory.mktemp("learning")
    chain = LocalChain(data_dir)
    info = chain.up()
    try:
        config = SwarmConfig(nodes=NODES, rounds=ROUNDS, mode="batched", eval_tasks=100)
        rows = run_swarm(
            config,
            data_dir=data_dir,
            run_dir=data_dir / "run",
            rpc_url=info.url,
            ipfs="embedded",
            workers=2,
            show_progress=False,
        )
        deployments = load_deployments(deployments_path(data_dir))
        assert deployments is not None
        ledger = Ledger.from_deployments(Web3(Web3.HTTPProvider(info.url)), deployments)
        lines = (data_dir / "run" / "nodes.jsonl").read_text().splitlines()
        nodes = [json.loads(line) for line in lines if line]
        yield LearningRun(data_dir, ledger, open_store("embedded", data_dir), rows, nodes)
    finally:
        chain.down()


@pytest.mark.slow
def test_final_version_beats_genesis_under_both_protocols(learning_run: LearningRun) -> None:
    """Adaptation helps: on held-out tasks the final version beats the genesis under the MAML
    protocol and the device protocol, and adapting it (10 steps) beats not adapting it."""
    assert [r["status"] for r in learning_run.rows] == ["finalized"] * ROUNDS
    family = get_family("sine")
    genesis = decode_version(learning_run.store.get(learning_run.version_cid(0)))
    final = decode_version(learning_run.store.get(learning_run.version_cid(ROUNDS)))
    before = score(genesis.params, family, genesis.recipe, n_tasks=500)
    after = score(final.params, family, final.recipe, n_tasks=500)
    assert after.maml[10] < after.maml[0], after.maml
    assert after.maml[10] < before.maml[10], (before.maml, after.maml)
    assert after.device < 0.5 * before.device, (before.device, after.device)
    assert after.device <= 1.0


@pytest.mark.slow
def test_both_protocols_fall_over_the_rounds(learning_run: LearningRun) -> None:
    device = [r["heldout"]["device"]["mean"] for r in learning_run.rows]
    maml10 = [r["heldout"]["loss_after"]["mean"] for r in learning_run.rows]
    third = ROUNDS // 3
    assert np.mean(device[-third:]) < np.mean(device[:third]), device
    assert np.mean(maml10[-third:]) < np.mean(maml10[:third]), maml10


@pytest.mark.slow
def test_validators_recompute_a_version_that_used_server_optimizer_state(
    learning_run: LearningRun,
) -> None:
    """Version 3 depends on version 2's Adam moments: recomputed from chain + IPFS data it
    matches bit for bit, and the same round from a base without that state does not."""
    ledger, store = learning_run.ledger, learning_run.store
    base = decode_version(store.get(learning_run.version_cid(2)))
    assert base.state.step == 2 and np.any(base.state.m) and np.any(base.state.v)
    evidence = gather_round(ledger, store, 3, 0)
    outcome = compute_aggregate(evidence, store)
    assert outcome.weights_cid == learning_run.version_cid(3)
    assert decode_version(outcome.weights).state.step == 3

    fresh = ServerState.zeros(base.state.m.size)
    stateless = encode_weights(base.params, base.arch_id, recipe=base.recipe, state=fresh)
    moved = replace(evidence, base_weights_cid=cid_str(store.put(stateless)))
    other = compute_aggregate(moved, store)
    assert other.weights_cid != learning_run.version_cid(3)


@pytest.mark.slow
def test_a_proposal_naming_another_rule_cannot_be_recomputed(learning_run: LearningRun) -> None:
    from chainml.aggregate.strategies import strategy_named

    evidence = gather_round(learning_run.ledger, learning_run.store, 2, 0)
    with pytest.raises(IntegrityError, match="recipe"):
        compute_aggregate(evidence, learning_run.store, strategy_named("krum"))


@pytest.mark.slow
def test_no_honest_node_is_excluded(learning_run: LearningRun) -> None:
    """With no adversaries, at most 1% of honest updates are excluded (here: none)."""
    counted = [n for n in learning_run.nodes if n["status"] in ("included", "excluded")]
    assert len(counted) == NODES * ROUNDS
    excluded = sum(n["status"] == "excluded" for n in counted)
    assert excluded / len(counted) <= 0.01
    reputations = {n["node"]: n["reputation"] for n in learning_run.nodes if n["round"] == ROUNDS}
    assert min(reputations.values()) >= 1_000  # nobody drifts towards the lock-out gate


@pytest.mark.slow
def test_a_node_excluded_once_is_included_again(make_env: Callable[[str], SwarmEnv]) -> None:
    """Under a rule that does exclude (Multi-Krum drops 30% a round), an excluded node's
    reputation survives and a later round includes it again."""
    env = make_env("krum")
    env.run(SwarmConfig(nodes=8, rounds=4, mode="batched", aggregation="krum", eval_tasks=100))
    lines = (env.data_dir / "runs" / "run" / "nodes.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line]
    status = {(r["node"], r["round"]): r["status"] for r in rows}
    excluded_then_included = [
        node
        for (node, rnd), s in status.items()
        if s == "excluded"
        and any(status.get((node, later)) == "included" for later in range(rnd + 1, 5))
    ]
    assert sum(s == "excluded" for s in status.values()) >= 4
    assert excluded_then_included, status


def test_a_run_with_another_recipe_is_refused_on_the_same_ledger(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    """The genesis fixes the recipe: a later run with other learning settings cannot silently
    change how versions are computed, and is told why."""
    from chainml.errors import ConfigError

    env = make_env("recipe")
    env.run(SwarmConfig(nodes=4, rounds=1, mode="direct", eval_tasks=100), name="first")
    with pytest.raises(ConfigError, match="another learning recipe"):
        env.run(
            SwarmConfig(nodes=4, rounds=1, mode="direct", eval_tasks=100, server_lr=0.5),
            name="second",
        )
