"""The node step, aggregation, the server step and the in-process simulation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig
from chainml.meta.federated import (
    AdamState,
    FederatedConfig,
    MetaClient,
    NodeConfig,
    adam_step,
    apply_update,
    mean_aggregate,
    node_step,
    node_steps,
    simulate_federated,
)
from chainml.meta.sparse import SparseUpdate, flatten_body

ARCH = "mlp-sine"


@pytest.mark.parametrize("rule", ["reptile", "fomaml", "maml"])
def test_node_step_returns_a_sparse_body_update_and_metrics(sine, sine_model, rule) -> None:
    p = sine_model.init(0)
    cfg = NodeConfig(rule=rule, shots=10, queries=10)
    res = node_step(sine_model, p, sine.task(0, 4), cfg)
    u = res.update
    assert isinstance(u, SparseUpdate) and u.size == sine_model.spec.body_size
    assert u.k == 172 and res.num_examples == 10
    assert set(res.metrics) >= {"loss_before", "loss_after", "num_samples"}
    again = node_step(sine_model, p, sine.task(0, 4), cfg)
    assert np.array_equal(u.indices, again.update.indices)
    assert np.array_equal(u.values, again.update.values)


def test_reptile_delta_is_the_adapted_body_minus_the_start(sine, sine_model) -> None:
    from chainml.meta.adapt import adapt

    p = sine_model.init(0)
    cfg = NodeConfig(rule="reptile", top_fraction=1.0, granularity="param")
    u = node_step(sine_model, p, sine.task(0, 2), cfg).update
    ep = sine.task(0, 2).episode(cfg.shots, cfg.queries, draw=0)
    phi = adapt(sine_model, p, ep.x_support, ep.y_support, cfg.adapt)
    expect = flatten_body(phi, sine_model.spec) - flatten_body(p, sine_model.spec)
    step = u.scales[u.segments()]
    assert np.all(np.abs(u.to_dense() - expect) <= step / 2 + 1e-7)


def test_round_selects_fresh_local_samples(sine, sine_model) -> None:
    p = sine_model.init(0)
    a = node_step(sine_model, p, sine.task(0, 1), NodeConfig(round=0))
    b = node_step(sine_model, p, sine.task(0, 1), NodeConfig(round=1))
    assert a.metrics["loss_before"] != b.metrics["loss_before"]


def test_batched_node_steps_match_single_steps(sine, sine_model) -> None:
    p = sine_model.init(0)
    tasks = [sine.task(0, i) for i in range(6)]
    cfg = NodeConfig(rule="maml", adapt=AdaptConfig(steps=1, inner_lr=0.01))
    batched = node_steps(sine_model, p, tasks, cfg)
    for t, b in zip(tasks, batched, strict=True):
        s = node_step(sine_model, p, t, cfg)
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
    w = mean_aggregate(ds[:2], [1, 3], weighted=True)
    assert np.allclose(w, (ds[0] + 3 * ds[1]) / 4, atol=1e-6)
    with pytest.raises(MetaLearningError):
        mean_aggregate([])


def test_apply_update_touches_only_the_body_and_is_pure(sine_model) -> None:
    p = sine_model.init(0)
    before = {k: v.clone() for k, v in p.items()}
    delta = np.ones(sine_model.spec.body_size, np.float32)
    new = apply_update(p, ARCH, delta, server_lr=0.5)
    assert all(torch.equal(p[k], before[k]) for k in p)
    for k in p:
        if k.startswith("head."):
            assert torch.equal(new[k], p[k])
        else:
            assert torch.equal(new[k], p[k] + 0.5)
    with pytest.raises(MetaLearningError):
        apply_update(p, ARCH, delta[:-1])


def test_adam_step_is_pure_and_normalised() -> None:
    d = np.array([1e-4, -2.0, 0.0], np.float32)
    s0 = AdamState.zeros(3)
    step, s1 = adam_step(d, s0, lr=0.1)
    assert np.allclose(step, [0.1, -0.1, 0.0], atol=1e-4)
    assert np.all(s0.m == 0) and s1.b1_power == pytest.approx(0.9)


def test_simulation_is_deterministic_and_learns(sine) -> None:
    node = NodeConfig(rule="maml", adapt=AdaptConfig(steps=1, inner_lr=0.01))
    cfg = FederatedConfig(
        rounds=40,
        nodes_per_round=10,
        population=1000,
        node=node,
        server_lr=3e-3,
        server_optimizer="adam",
    )
    a = simulate_federated(sine, ARCH, cfg)
    b = simulate_federated(sine, ARCH, cfg)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert a.compression >= 10
    first = np.mean([h.loss_before for h in a.history[:10]])
    last = np.mean([h.loss_before for h in a.history[-10:]])
    assert last < first
    start = simulate_federated(sine, ARCH, replace(cfg, rounds=0)).params
    assert torch.equal(a.params["head.weight"], start["head.weight"])  # the head is never sent
    assert not torch.equal(a.params["body.0.weight"], start["body.0.weight"])


def test_participants_are_sorted_and_reproducible() -> None:
    cfg = FederatedConfig(rounds=5, nodes_per_round=8, population=50)
    assert cfg.participants(3) == sorted(cfg.participants(3)) == cfg.participants(3)
    assert len(set(cfg.participants(3))) == 8
    with pytest.raises(MetaLearningError):
        FederatedConfig(nodes_per_round=20, population=10)
