"""A strong attack through the real swarm: Anvil, the embedded store, signed commitments in
batched mode, the aggregator and the validators. 20% min-max colluders (Shejwalkar &
Houmansadr 2021) drag the undefended mean's first step off the honest direction; ``guard``
excludes exactly them, every round, and they fall behind honest nodes in reputation."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from chainml.aggregate.strategies import Contribution, strategy_for_recipe
from chainml.meta.federated import NodeConfig, node_steps
from chainml.meta.models import get_model
from chainml.meta.sparse import encode_sparse, flatten_params
from chainml.meta.tasks import get_family
from chainml.protocol.evidence import gather_round
from chainml.protocol.payloads import decode_update, decode_version
from chainml.swarm.attacks import adversary_indices
from chainml.swarm.config import SwarmConfig
from tests.swarm.conftest import SwarmEnv

NODES, ROUNDS, ATTACK = 10, 2, "minmax"


@dataclass
class Outcome:
    rows: list[dict]
    nodes: list[dict]
    first_step: np.ndarray
    honest_mean: np.ndarray
    """The run's rule applied to the honest updates alone (for ``mean``, their mean)."""
    stored: dict[int, bytes]


def run(env: SwarmEnv, rule: str) -> Outcome:
    config = SwarmConfig(
        nodes=NODES,
        rounds=ROUNDS,
        aggregation=rule,
        adversaries=0.2,
        attack=ATTACK,
    )
    rows = env.run(config)
    nodes = [json.loads(line) for line in (env.data_dir / "runs" / "run" / "nodes.jsonl").open()]
    store, ledger = env.store(), env.ledger()
    v0, v1 = (decode_version(store.get(c)) for c in env.version_cids()[:2])
    spec = get_model(v0.arch_id).spec
    first_step = flatten_params(v1.params, spec) - flatten_params(v0.params, spec)
    family, model = get_family("sine"), get_model(v0.arch_id)
    adversaries = adversary_indices(NODES, 0.2, 0)
    tasks = [family.task(0, i, "train") for i in range(NODES)]
    cfg = NodeConfig(v0.recipe, 1)
    honest = node_steps(
        model, v0.params, [t for i, t in enumerate(tasks) if i not in adversaries], cfg
    )
    index_of = {r["node"].lower(): r["index"] for r in nodes}
    evidence = gather_round(ledger, store, 1, 0)
    stored = {
        index_of[u.node.lower()]: encode_sparse(decode_update(store.get(u.update_cid), v0.arch_id))
        for u in evidence.updates
        if index_of[u.node.lower()] in adversaries
    }
    clean = strategy_for_recipe(v0.recipe).aggregate(  # the run's rule, with its settings
        [Contribution(f"0x{i:040x}", r.update.to_dense(), 10) for i, r in enumerate(honest)]
    )
    return Outcome(rows, nodes, first_step, clean.delta, stored)


def sign_agreement(step: np.ndarray, honest_mean: np.ndarray) -> float:
    """Adam's first step is lr * sign(aggregate): the share of the honest mean's coordinates
    that it moves the right way."""
    on = (honest_mean != 0) & (step != 0)
    return float(np.mean(np.sign(step[on]) == np.sign(honest_mean[on])))


@pytest.mark.slow
def test_minmax_hurts_the_mean_and_guard_excludes_exactly_the_colluders(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    undefended = run(make_env("mean"), "mean")
    defended = run(make_env("guard"), "guard")
    for outcome in (undefended, defended):
        assert all(r["status"] == "finalized" for r in outcome.rows)
        # no two colluders store the same bytes (identical CIDs would mark them as sybils)
        assert len(set(outcome.stored.values())) == 2
    adversary_rows = [r for r in undefended.nodes if r["adversary"]]
    assert adversary_rows and all(r["status"] == "included" for r in adversary_rows)
    assert sign_agreement(undefended.first_step, undefended.honest_mean) < 0.9
    assert sign_agreement(defended.first_step, defended.honest_mean) > 0.95
    for r in defended.nodes:
        assert r["status"] == ("excluded" if r["adversary"] else "included"), r
    last = [r for r in defended.nodes if r["round"] == defended.rows[-1]["round"]]
    assert max(r["reputation"] for r in last if r["adversary"]) < min(
        r["reputation"] for r in last if not r["adversary"]
    )
