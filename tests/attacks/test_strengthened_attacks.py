"""The strengthened simple attacks: each hurts the undefended mean where the old form did not
(on a learned fleet the server's Adam step undid them), and the default defence bounds it.

- ``scale`` bursts to the decoder's cap once every ``SCALE_BURST_PERIOD`` rounds: Adam keeps the
  burst in its moments, so the undefended mean keeps stepping the burst's way and then stalls.
- ``sybil`` identities store distinct bytes (identical ones were screened as copied work before
  any rule ran, so the attack never reached the mean); guard's screen still finds them.
- ``sign_flip`` sends ``-4 g``: the mean of a fleet with a fifth flipping points backwards.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from chainml.aggregate.strategies import Contribution, strategy_named
from chainml.meta.federated import NodeConfig, ServerState, node_steps, server_step
from chainml.meta.models import get_model
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import MAX_SCALE, encode_sparse
from chainml.meta.tasks import get_family
from chainml.swarm.attacks import (
    SCALE_BURST_PERIOD,
    SCALE_FACTOR,
    adversary_indices,
    attacked_updates,
    poison_update,
)

NODES = 20


@pytest.fixture(scope="module")
def fleet() -> dict:
    torch.set_num_threads(1)
    family, model = get_family("sine"), get_model("mlp-sine")
    tasks = [family.task(0, i, "train") for i in range(NODES)]
    return {"family": family, "model": model, "tasks": tasks, "params": model.init(0)}


def round_updates(fleet: dict, attack: str | None, rule: str, round_id: int) -> dict:
    recipe = replace(Recipe(), aggregation=rule)
    config = NodeConfig(recipe, round_id)
    model, params, tasks = fleet["model"], fleet["params"], fleet["tasks"]
    updates = dict(enumerate(r.update for r in node_steps(model, params, tasks, config)))
    if attack is not None:
        adversaries = adversary_indices(NODES, 0.2, 0)
        used = tasks
        if attack == "sybil":
            used = [tasks[min(adversaries)] if i in adversaries else t for i, t in enumerate(tasks)]
        updates |= attacked_updates(
            attack, model, params, used, adversaries, config, fleet["family"], 0
        )
    return updates


def aggregate(updates: dict, rule: str) -> tuple[np.ndarray, set[int]]:
    result = strategy_named(rule).aggregate(
        [Contribution(f"0x{i:040x}", u.to_dense(), 10) for i, u in updates.items()]
    )
    return result.delta, {int(n, 16) for n in result.excluded}


def test_scale_bursts_to_the_cap_once_per_period(fleet: dict) -> None:
    update = round_updates(fleet, None, "mean", 1)[0]
    for round_id in (1, 1 + SCALE_BURST_PERIOD):
        assert np.all(poison_update("scale", update, 0, round_id, 0).scales == MAX_SCALE)
    steady = poison_update("scale", update, 0, 2, 0).scales
    assert np.array_equal(steady, (update.scales * np.float32(SCALE_FACTOR)).astype(np.float32))


def next_step(
    params: dict, state: ServerState, recipe: Recipe, direction: np.ndarray
) -> np.ndarray:
    after, _ = server_step(params, "mlp-sine", direction, state, recipe)
    flat = [(after[k] - params[k]).numpy().ravel() for k in params]
    return np.concatenate(flat)


def test_a_burst_takes_the_undefended_adam_step_out_of_the_honest_nodes_hands(
    fleet: dict,
) -> None:
    """After a burst round, the mean's next step goes much the same way whether the honest
    nodes then send ``h`` or ``-h`` (Adam's moments hold the burst); after guard's, it follows
    them."""
    spec = fleet["model"].spec
    honest_next = aggregate(round_updates(fleet, None, "mean", 2), "mean")[0]
    for rule, steered in (("mean", False), ("guard", True)):
        recipe = replace(Recipe(), aggregation=rule)
        burst = aggregate(round_updates(fleet, "scale", rule, 1), rule)[0]
        clean = aggregate(round_updates(fleet, None, rule, 1), rule)[0]
        assert (np.linalg.norm(burst) > 100 * np.linalg.norm(clean)) != steered
        params, state = server_step(
            fleet["params"], "mlp-sine", burst, ServerState.zeros(spec.num_params), recipe
        )
        up, down = (
            next_step(params, state, recipe, direction) for direction in (honest_next, -honest_next)
        )
        cos = float(up @ down) / (np.linalg.norm(up) * np.linalg.norm(down))
        assert (cos < 0.25) == steered, (rule, cos)  # seen: mean 0.57, guard -0.14


def test_sybil_identities_store_distinct_bytes_and_guard_excludes_exactly_them(
    fleet: dict,
) -> None:
    updates = round_updates(fleet, "sybil", "guard", 2)
    adversaries = adversary_indices(NODES, 0.2, 0)
    assert len({encode_sparse(updates[i]) for i in adversaries}) == len(adversaries)
    _, excluded_mean = aggregate(updates, "mean")
    assert excluded_mean == set()  # the mean takes every sybil in
    _, excluded = aggregate(updates, "guard")
    assert excluded == set(adversaries)


def test_sign_flip_turns_the_undefended_mean_backwards(fleet: dict) -> None:
    honest = aggregate(round_updates(fleet, None, "mean", 1), "mean")[0]
    attacked = aggregate(round_updates(fleet, "sign_flip", "mean", 1), "mean")[0]
    defended = aggregate(round_updates(fleet, "sign_flip", "guard", 1), "guard")[0]

    def cos(a: np.ndarray) -> float:
        return float(a @ honest) / (np.linalg.norm(a) * np.linalg.norm(honest))

    assert cos(attacked) < 0.5 < cos(defended)
