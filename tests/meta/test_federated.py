"""The recipe's node step, aggregation, the server step and the in-process simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainml.errors import ConfigError, MetaLearningError
from chainml.meta.federated import (
    MetaClient,
    NodeConfig,
    ServerState,
    adam_step,
    mean_aggregate,
    node_objective,
    node_step,
    node_steps,
    server_step,
    simulate_federated,
)
from chainml.meta.protocols import score
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import SparseUpdate, flatten_params
from chainml.meta.tasks import get_family

ARCH = "mlp-sine"


def test_node_step_sends_minus_the_recipe_gradient_over_all_parameters(sine, sine_model) -> None:
    """With top-100% the update is the dequantized -grad of MAML loss + device loss."""
    recipe = Recipe(top_fraction=1.0)
    p = sine_model.init(0)
    res = node_step(sine_model, p, sine.task(0, 4), NodeConfig(recipe, round=3))
    u = res.update
    assert isinstance(u, SparseUpdate) and u.size == sine_model.spec.num_params
    ep = sine.task(0, 4).episode(recipe.support_shots, recipe.query_shots, draw=3)
    g = torch.func.grad(
        lambda q: node_objective(
            sine_model, q, ep.x_support, ep.y_support, ep.x_query, ep.y_query, recipe
        )[0]
    )(p)
    expect = -flatten_params(g, sine_model.spec)
    step = u.scales[u.segments()]
    assert np.all(np.abs(u.to_dense() - expect) <= step / 2 + 1e-6)
    head = sine_model.spec.num_params - sine_model.spec.body_size
    assert np.count_nonzero(u.to_dense()[-head:]) > 0  # the head is part of the protocol
    assert set(res.metrics) >= {"loss_before", "loss_maml", "loss_after", "num_samples", "bytes"}


def test_node_step_is_deterministic_and_each_round_draws_fresh_samples(sine, sine_model) -> None:
    p = sine_model.init(0)
    a = node_step(sine_model, p, sine.task(0, 1), NodeConfig(round=1))
    again = node_step(sine_model, p, sine.task(0, 1), NodeConfig(round=1))
    b = node_step(sine_model, p, sine.task(0, 1), NodeConfig(round=2))
    assert np.array_equal(a.update.to_dense(), again.update.to_dense())
    assert a.metrics["loss_before"] != b.metrics["loss_before"]
    assert a.update.k == 177  # top-10% of 1,761 parameters


def test_batched_node_steps_match_single_steps(sine, sine_model) -> None:
    p = sine_model.init(0)
    tasks = [sine.task(0, i) for i in range(6)]
    batched = node_steps(sine_model, p, tasks, NodeConfig(round=1))
    for t, b in zip(tasks, batched, strict=True):
        s = node_step(sine_model, p, t, NodeConfig(round=1))
        assert np.allclose(s.update.to_dense(), b.update.to_dense(), atol=2 * s.update.scales.max())
        assert s.metrics["loss_before"] == pytest.approx(b.metrics["loss_before"], rel=1e-5)


def test_client_contract_accepts_numpy_weights(sine) -> None:
    client = MetaClient(sine, ARCH, seed=0, node_index=9)
    params = {k: v.numpy() for k, v in client.model.init(0).items()}
    update, n, metrics = client.fit(params, NodeConfig())
    assert isinstance(update, SparseUpdate) and n == 10 and metrics["bytes"] == update.nbytes()


def test_mean_aggregate_is_order_fixed_pure_and_exact() -> None:
    rng = np.random.default_rng(0)
    ds = [rng.standard_normal(100).astype(np.float32) for _ in range(7)]
    copies = [d.copy() for d in ds]
    m = mean_aggregate(ds)
    assert all(np.array_equal(a, b) for a, b in zip(ds, copies, strict=True))
    ref = (np.sum(np.array(ds, np.float64), axis=0) / 7).astype(np.float32)
    assert np.allclose(m, ref, atol=1e-7) and m.dtype == np.float32
    with pytest.raises(MetaLearningError):
        mean_aggregate([])


def test_server_step_moves_every_parameter_and_carries_adam_state(sine_model) -> None:
    p = sine_model.init(0)
    before = {k: v.clone() for k, v in p.items()}
    n = sine_model.spec.num_params
    delta = np.ones(n, np.float32)
    recipe = Recipe(server_lr=0.5, server_lr_decay_rounds=1)
    new, state = server_step(p, ARCH, delta, ServerState.zeros(n), recipe)
    assert all(torch.equal(p[k], before[k]) for k in p)  # pure
    for k in p:  # Adam's first step is lr * sign(delta), the head included
        assert torch.allclose(new[k], p[k] + 0.5, atol=1e-5)
    assert state.step == 1 and state.b1_power == pytest.approx(0.9)
    again, state2 = server_step(new, ARCH, delta, state, recipe)
    assert state2.step == 2
    # the decayed learning rate is lr * T / (T + t): 0.25 at the second step
    assert torch.allclose(again["head.bias"], new["head.bias"] + 0.25, atol=1e-5)
    with pytest.raises(MetaLearningError):
        server_step(p, ARCH, delta[:-1], ServerState.zeros(n), recipe)
    bad = delta.copy()
    bad[0] = np.nan
    with pytest.raises(MetaLearningError):
        server_step(p, ARCH, bad, ServerState.zeros(n), recipe)


def test_adam_step_is_pure_and_normalised() -> None:
    d = np.array([1e-4, -2.0, 0.0], np.float32)
    s0 = ServerState.zeros(3)
    step, s1 = adam_step(d, s0, 0.1, 0.9, 0.999, 1e-8)
    assert np.allclose(step, [0.1, -0.1, 0.0], atol=1e-4)
    assert np.all(s0.m == 0) and s1.b1_power == pytest.approx(0.9)


def test_recipe_round_trips_and_rejects_bad_fields() -> None:
    r = Recipe(aggregation="cclip", aggregation_settings=(("radius_factor", 2.0),))
    assert Recipe.parse(r.canonical()) == r
    assert r.digest() != Recipe().digest()
    raw = r.to_json()
    for change in ({"inner_lr": "0.01"}, {"top_fraction": 0.0}, {"nope": 1}, {"format": "x"}):
        with pytest.raises(ConfigError):
            Recipe.from_json(raw | change)


def test_simulation_is_deterministic_and_learns_under_both_protocols() -> None:
    sine = get_family("sine")
    recipe = Recipe()
    a = simulate_federated(sine, ARCH, recipe, rounds=30, nodes=20)
    b = simulate_federated(sine, ARCH, recipe, rounds=30, nodes=20)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert a.state.step == 30
    start = simulate_federated(sine, ARCH, recipe, rounds=0, nodes=20).params
    before, after = (
        score(start, sine, recipe, n_tasks=200),
        score(a.params, sine, recipe, n_tasks=200),
    )
    assert after.device < 0.6 * before.device
    assert after.maml[10] < before.maml[10]
    assert a.compression >= 10


def test_family_defaults_shape_the_recipe_and_explicit_settings_win() -> None:
    sine = Recipe.for_family("sine")
    assert (sine.support_shots, sine.query_shots, sine.inner_steps) == (5, 15, 3)
    assert sine.device_shots == 20 and sine.ridge_weight < Recipe().ridge_weight
    meter = Recipe.for_family("meter")
    assert meter.ridge_weight == 1.0 and meter.device_shots == 20
    assert Recipe.for_family("unknown-family") == Recipe()
    mine = Recipe.for_family("sine", support_shots=8, inner_steps=1)
    assert (mine.support_shots, mine.inner_steps, mine.device_shots) == (8, 1, 23)
    with pytest.raises(ConfigError):
        Recipe.for_family("sine", support_shots=0)


def test_a_device_online_step_folds_one_more_sample_into_its_ridge_head(sine_model) -> None:
    """k online steps on the device = the ridge head re-fit on device_shots + k samples; no
    gradient step, so no online step can blow the head up."""
    from chainml.meta.evaluate import evaluate
    from chainml.meta.federated import device_adapt_config
    from chainml.meta.protocols import device_curve

    sine = get_family("sine")
    recipe = Recipe.for_family("sine")
    config = device_adapt_config(recipe)
    assert config.steps == 0 and config.head_refit == "ridge"
    p = sine_model.init(0)
    curve = device_curve(p, sine, recipe, n_tasks=100, steps=(0, 10))
    more = evaluate(
        p, sine, n_tasks=100, shots=recipe.device_shots + 10, steps=(0,), adapt_config=config
    )
    assert curve[10][0] == more.results[0].loss_mean
    assert curve[10][0] < curve[0][0]  # ten more samples: a better head on random features
    with pytest.raises(MetaLearningError):
        device_curve(p, sine, recipe, n_tasks=100, steps=(-1,))
