"""The model-poisoning attacks against the real aggregation rules, on real node updates.

Honest updates come from the honest node step (``node_steps``) at the genesis weights, one per
sine train task; the attackers' updates come from the attack code the swarm's node jobs run.
Damage is measured against what each rule gives from the honest nodes alone: the honest mean
for the undefended rule, which the attack drags off it, and the default defence's (``guard``)
clean aggregate, which it stays on, excluding only attackers. (With heavy-tailed honest updates
the two clean references differ: guard's median-centred clipping is not the mean.)

The per-round geometry is checked on the base recipe (``Recipe()``: 10 + 10 shots, one inner
step), whose update spread these thresholds were set on. Under the default sine recipe (5 + 15
shots, three inner steps) single rounds of sign_flip, noise, label_flip, fang_trimmed and adaptive
are bounded less tightly; what decides is the outcome over a run, which bench/faults.py measures
on the default recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from chainml.aggregate.strategies import Contribution, strategy_named
from chainml.meta.federated import NodeConfig, node_steps
from chainml.meta.models import get_model
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import SparseUpdate, encode_sparse
from chainml.meta.tasks import get_family
from chainml.swarm.attacks import (
    CRAFTED,
    AttackContext,
    adversary_indices,
    attacked_node_step,
    attacked_updates,
    heterogeneity,
    simulate_attack,
)

NODES, FRACTION = 30, 0.2
SEED = 0
RECIPE = Recipe()
SCREENED = ("alie", "ipm_small", "ipm_large", "minmax", "minsum", "fang_krum", "backdoor")
"""Attacks whose colluders share one direction: the guard's screen must exclude them all."""


@dataclass(frozen=True)
class Round:
    honest: dict[int, SparseUpdate]
    adversaries: frozenset[int]
    honest_mean: np.ndarray
    honest_guard: np.ndarray
    """``guard``'s aggregate of the honest nodes alone."""


@pytest.fixture(scope="module")
def genesis() -> Round:
    torch.set_num_threads(1)
    family, model = get_family("sine"), get_model("mlp-sine")
    tasks = [family.task(0, i, "train") for i in range(NODES)]
    config = NodeConfig(RECIPE, 1)
    honest = dict(enumerate(r.update for r in node_steps(model, model.init(0), tasks, config)))
    adversaries = adversary_indices(NODES, FRACTION, 0)
    rows = [honest[i].to_dense() for i in range(NODES) if i not in adversaries]
    clean = strategy_named("guard").aggregate(
        [
            Contribution(f"0x{i:040x}", honest[i].to_dense(), 10)
            for i in range(NODES)
            if i not in adversaries
        ]
    )
    return Round(honest, adversaries, np.mean(rows, axis=0), clean.delta)


def attacked(genesis: Round, attack: str, rule: str) -> dict[int, SparseUpdate]:
    family, model = get_family("sine"), get_model("mlp-sine")
    tasks = [family.task(0, i, "train") for i in range(NODES)]
    recipe = replace(RECIPE, aggregation=rule)
    bad = attacked_updates(
        attack, model, model.init(0), tasks, genesis.adversaries, NodeConfig(recipe, 1), family, 0
    )
    return genesis.honest | bad


def aggregate(updates: dict[int, SparseUpdate], rule: str) -> tuple[np.ndarray, set[int]]:
    result = strategy_named(rule).aggregate(
        [Contribution(f"0x{i:040x}", u.to_dense(), 10) for i, u in updates.items()]
    )
    return result.delta, {int(n, 16) for n in result.excluded}


def damage(delta: np.ndarray, honest_mean: np.ndarray) -> tuple[float, float]:
    """(cosine to the honest mean, distance to it relative to its norm)."""
    norm = float(np.linalg.norm(honest_mean))
    cos = float(delta @ honest_mean) / (float(np.linalg.norm(delta)) * norm)
    return cos, float(np.linalg.norm(delta - honest_mean)) / norm


def test_guard_excludes_no_honest_node_in_clean_rounds() -> None:
    """50 honest nodes, three data draws: nobody excluded, and the aggregate follows the honest
    mean at least as closely as the classic robust rules do (clipping heavy-tailed honest
    updates costs some alignment in an unusual draw, as every robust rule's does)."""
    family, model = get_family("sine"), get_model("mlp-sine")
    tasks = [family.task(0, i, "train") for i in range(50)]
    params = model.init(0)
    for round_id in (1, 2, 3):
        config = NodeConfig(RECIPE, round_id)
        rows = [r.update.to_dense() for r in node_steps(model, params, tasks, config)]
        result = strategy_named("guard").aggregate(
            [Contribution(f"0x{i:040x}", d, 10) for i, d in enumerate(rows)]
        )
        assert result.excluded == ()
        honest_mean = np.mean(rows, axis=0)
        cos, _ = damage(result.delta, honest_mean)
        contributions = [Contribution(f"0x{i:040x}", d, 10) for i, d in enumerate(rows)]
        for rule in ("median", "trimmed"):
            other = strategy_named(rule).aggregate(contributions).delta
            assert cos >= damage(other, honest_mean)[0]
        assert cos > 0.5


@pytest.mark.parametrize("attack", [a for a in SCREENED if a != "ipm_small"])
# IPM with a small epsilon (2.0) leaves one round's plain mean on the honest side (0.8 mu -
# 0.4 mu): its harm shows only over a run (bench/faults.py: the undefended loss x4.2 on sine).
def test_attack_drags_the_undefended_mean_off_the_honest_direction(
    genesis: Round, attack: str
) -> None:
    delta, excluded = aggregate(attacked(genesis, attack, "mean"), "mean")
    cos, dist = damage(delta, genesis.honest_mean)
    assert excluded == set()
    assert cos < 0.8 or dist > 2.0, (cos, dist)


@pytest.mark.parametrize("attack", SCREENED)
def test_guard_excludes_exactly_the_colluders_and_stays_on_course(
    genesis: Round, attack: str
) -> None:
    delta, excluded = aggregate(attacked(genesis, attack, "guard"), "guard")
    assert excluded == set(genesis.adversaries)
    honest_only = {i: u for i, u in genesis.honest.items() if i not in genesis.adversaries}
    reference, _ = aggregate(honest_only, "guard")
    assert np.array_equal(delta, reference)  # as if the attackers had never sent anything
    assert np.array_equal(reference, genesis.honest_guard)


@pytest.mark.parametrize("attack", ["fang_trimmed", "adaptive"])
def test_unscreened_attacks_are_bounded_better_than_by_the_mean(
    genesis: Round, attack: str
) -> None:
    """Fang's trimmed-mean attack (independent draws per attacker) and the adaptive attacker
    (seeded noise against the screen) are not excluded; centred clipping bounds their pull, but
    does not cancel it (the defence does not hold these yet: see bench/faults.py)."""
    undefended, _ = aggregate(attacked(genesis, attack, "mean"), "mean")
    defended, excluded = aggregate(attacked(genesis, attack, "guard"), "guard")
    assert not excluded & (set(range(NODES)) - genesis.adversaries)
    cos_mean, dist_mean = damage(undefended, genesis.honest_mean)
    cos_guard, dist_guard = damage(defended, genesis.honest_guard)
    assert cos_mean < 0.0
    assert cos_guard > cos_mean + 0.5 and dist_guard < dist_mean / 2


@pytest.mark.parametrize("attack", ["sign_flip", "scale", "noise", "label_flip"])
def test_guard_bounds_the_simple_attacks(genesis: Round, attack: str) -> None:
    undefended, _ = aggregate(attacked(genesis, attack, "mean"), "mean")
    defended, excluded = aggregate(attacked(genesis, attack, "guard"), "guard")
    assert not excluded - genesis.adversaries
    assert damage(defended, genesis.honest_guard)[1] < damage(undefended, genesis.honest_mean)[1]
    assert damage(defended, genesis.honest_guard)[0] > 0.9


@pytest.mark.parametrize("attack", CRAFTED)
def test_each_attacker_job_stores_the_twins_bytes_and_no_two_collide(
    genesis: Round, attack: str
) -> None:
    """What one adversary's node job computes (``attacked_node_step``) is byte for byte what the
    in-process twin uses for it, repeatably, and colluders never share a CID."""
    family, model = get_family("sine"), get_model("mlp-sine")
    recipe = replace(RECIPE, aggregation="guard")
    config = NodeConfig(recipe, 1)
    twin = attacked(genesis, attack, "guard")
    first = min(genesis.adversaries)
    for _ in range(2):
        job = attacked_node_step(
            attack,
            model,
            model.init(0),
            family.task(0, first, "train"),
            config,
            AttackContext(family, 0, first),
        )
        assert encode_sparse(job.update) == encode_sparse(twin[first])
    payloads = {encode_sparse(twin[i]) for i in genesis.adversaries}
    assert len(payloads) == len(genesis.adversaries)


def test_guard_is_order_independent_bit_for_bit(genesis: Round) -> None:
    updates = attacked(genesis, "fang_trimmed", "guard")
    contributions = [Contribution(f"0x{i:040x}", u.to_dense(), 10) for i, u in updates.items()]
    a = strategy_named("guard").aggregate(contributions)
    b = strategy_named("guard").aggregate(contributions[::-1])
    assert a.delta.tobytes() == b.delta.tobytes() and a.excluded == b.excluded


def test_reputation_gate_keeps_excluded_colluders_out_in_the_twin() -> None:
    """Screened colluders lose 50 per exclusion; after six they fall under the 700 gate, and
    honest nodes keep gaining. A short twin run with ALIE under guard shows it."""
    recipe = replace(RECIPE, aggregation="guard")
    run = simulate_attack(
        get_family("sine"), "mlp-sine", recipe, rounds=7, nodes=20, fraction=0.2, attack="alie"
    )
    adversaries = adversary_indices(20, 0.2, 0)
    assert all(run.excluded[i] == 7 for i in adversaries)
    assert all(run.excluded[i] == 0 for i in range(20) if i not in adversaries)
    assert max(run.reputation[i] for i in adversaries) < 700
    assert min(run.reputation[i] for i in range(20) if i not in adversaries) == 1_070


def test_heterogeneity_is_the_spread_over_the_squared_mean() -> None:
    # mean (2, 0): squared distances 1 and 1, squared mean 4
    assert heterogeneity(np.array([[1.0, 0.0], [3.0, 0.0]])) == 0.25
    assert heterogeneity(np.ones((3, 4), dtype=np.float32)) == 0.0
    assert heterogeneity(np.array([[1.0, -1.0], [-1.0, 1.0]])) == float("inf")
    with pytest.raises(ValueError, match="two rows"):
        heterogeneity(np.ones((1, 4)))


def test_twin_measures_the_heterogeneity_of_honest_updates_only(genesis: Round) -> None:
    """Round 1 of the twin starts from the genesis weights, so its figure is that of the
    fixture's honest updates; the sign-flippers' updates, had they counted, would change it."""
    recipe = replace(RECIPE, aggregation="guard")
    run = simulate_attack(
        get_family("sine"), "mlp-sine", recipe, rounds=1, nodes=NODES, fraction=FRACTION,
        attack="sign_flip",
    )  # fmt: skip
    honest = np.stack([genesis.honest[i].to_dense() for i in range(NODES)
                       if i not in genesis.adversaries])  # fmt: skip
    everyone = attacked(genesis, "sign_flip", "guard")
    with_attackers = np.stack([everyone[i].to_dense() for i in range(NODES)])
    assert run.heterogeneity == [heterogeneity(honest)]
    assert heterogeneity(with_attackers) != run.heterogeneity[0]
    assert run.heterogeneity[0] > 1  # one task per device: the spread outweighs the mean


def _guard(updates: dict[int, SparseUpdate], mix: float) -> np.ndarray:
    rule = strategy_named("guard", mix_fraction=mix)
    rows = [Contribution(f"0x{i:040x}", u.to_dense(), 10) for i, u in updates.items()]
    return rule.aggregate(rows).delta


def test_mixing_keeps_sign_flips_closer_to_the_honest_aggregate(genesis: Round) -> None:
    """Each variant of guard, measured against its own aggregate of the honest nodes alone, is
    pulled less far by sign flips with nearest-neighbour mixing than without it."""
    honest = {i: u for i, u in genesis.honest.items() if i not in genesis.adversaries}
    updates = attacked(genesis, "sign_flip", "guard")
    pulls = []
    for mix in (0.0, 0.25):
        clean = _guard(honest, mix)
        pulls.append(float(np.linalg.norm(_guard(updates, mix) - clean) / np.linalg.norm(clean)))
    without, with_mixing = pulls
    assert with_mixing < 0.8 * without, pulls


@pytest.mark.slow
def test_mixing_holds_label_flips_over_a_run() -> None:
    """Label flips look like honest updates in any one round (at genesis mixing does not pull
    less); their harm is persistent, and over a run mixing is what holds it. The twin on the
    default sine recipe, 20% label flippers among 50 nodes, 50 rounds: without mixing the loss
    is several times the clean run's (3.6x, 3 seeds, here), and mixing cuts it by more than half
    (1.4x). Each loss is the mean over 3 seeds, as in the fault bench: one run's trajectory is
    chaotic, and on another CPU (other float kernels) a single seed lost its 2x margin."""
    from chainml.meta.protocols import device_protocol
    from chainml.swarm.config import SwarmConfig

    family = get_family("sine")

    def loss(mix: float, attack: str | None) -> float:
        recipe = replace(
            SwarmConfig(nodes=50).recipe(), aggregation_settings=(("mix_fraction", mix),)
        )
        losses = []
        for seed in (SEED, SEED + 1, SEED + 2):
            run = simulate_attack(
                family, "mlp-sine", recipe, rounds=50, nodes=50, fraction=0.2 if attack else 0.0,
                attack=attack, seed=seed, keep_last=5,
            )  # fmt: skip
            losses += [device_protocol(p, family, recipe, n_tasks=500, seed=0)[0]
                       for p in run.recent]  # fmt: skip
        return float(np.mean(losses))

    clean = loss(0.25, None)
    without_mixing, with_mixing = loss(0.0, "label_flip"), loss(0.25, "label_flip")
    assert without_mixing > 2.0 * clean  # the run where the attack must hurt
    assert with_mixing < 0.5 * without_mixing and with_mixing < 2.0 * clean
