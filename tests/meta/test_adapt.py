"""The shared adaptation routine."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig, adapt, loss_fn, refit_head
from chainml.meta.models import get_model


def _data(sine, i: int = 0):
    return sine.task(0, i).episode(10, 50)


def test_adapt_is_pure_and_zero_steps_is_identity(sine, sine_model) -> None:
    p = sine_model.init(0)
    before = {k: v.clone() for k, v in p.items()}
    ep = _data(sine)
    same = adapt(sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=0))
    new = adapt(sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=3))
    assert all(torch.equal(p[k], before[k]) for k in p)
    assert all(torch.equal(same[k], p[k]) for k in p)
    assert not torch.equal(new["body.0.weight"], p["body.0.weight"])


def test_steps_reduce_the_support_loss(sine, sine_model) -> None:
    p, ep = sine_model.init(0), _data(sine)
    losses = [
        float(
            loss_fn(
                sine_model,
                adapt(
                    sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=k, inner_lr=0.01)
                ),
                ep.x_support,
                ep.y_support,
            )
        )
        for k in (0, 1, 5, 20)
    ]
    assert losses == sorted(losses, reverse=True)


def test_one_step_matches_a_manual_sgd_step(sine, sine_model) -> None:
    p, ep = sine_model.init(0), _data(sine)
    g = grad(lambda q: loss_fn(sine_model, q, ep.x_support, ep.y_support))(p)
    new = adapt(sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=1, inner_lr=0.1))
    assert all(torch.allclose(new[k], p[k] - 0.1 * g[k]) for k in p)


def test_first_order_detaches_the_inner_gradient(sine, sine_model) -> None:
    p0, ep = sine_model.init(0), _data(sine)

    def outer(p, first_order):
        cfg = AdaptConfig(steps=1, inner_lr=0.05, first_order=first_order)
        return loss_fn(
            sine_model,
            adapt(sine_model, p, ep.x_support, ep.y_support, cfg),
            ep.x_query,
            ep.y_query,
        )

    g_fo = grad(outer)(p0, True)
    phi = adapt(sine_model, p0, ep.x_support, ep.y_support, AdaptConfig(steps=1, inner_lr=0.05))
    g_at_phi = grad(lambda q: loss_fn(sine_model, q, ep.x_query, ep.y_query))(phi)
    g_so = grad(outer)(p0, False)
    assert all(torch.allclose(g_fo[k], g_at_phi[k], atol=1e-6) for k in p0)
    assert not all(torch.allclose(g_so[k], g_fo[k], atol=1e-6) for k in p0)


def test_regularisers_limit_drift(sine, sine_model) -> None:
    p, ep = sine_model.init(0), _data(sine, 5)
    base = AdaptConfig(steps=20, inner_lr=0.02)

    def drift(cfg):
        new = adapt(sine_model, p, ep.x_support, ep.y_support, cfg)
        return sum(float(((new[k] - p[k]) ** 2).sum()) for k in p) ** 0.5

    free = drift(base)
    assert drift(AdaptConfig(steps=20, inner_lr=0.02, proximal=20.0)) < 0.5 * free
    clipped = drift(AdaptConfig(steps=20, inner_lr=0.02, max_grad_norm=0.1))
    assert clipped <= 20 * 0.02 * 0.1 + 1e-6


def test_online_uses_one_sample_per_step(sine, sine_model) -> None:
    p, ep = sine_model.init(0), _data(sine)
    online = adapt(sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=1, online=True))
    first = adapt(sine_model, p, ep.x_support[:1], ep.y_support[:1], AdaptConfig(steps=1))
    assert all(torch.allclose(online[k], first[k]) for k in p)


def test_train_subsets_freeze_the_rest(sine, sine_model) -> None:
    p, ep = sine_model.init(0), _data(sine)
    head = adapt(sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=2, train="head"))
    body = adapt(sine_model, p, ep.x_support, ep.y_support, AdaptConfig(steps=2, train="body"))
    for k in p:
        assert torch.equal(head[k], p[k]) != k.startswith("head.")
        assert torch.equal(body[k], p[k]) == k.startswith("head.")


def test_ridge_head_refit_solves_a_linear_readout() -> None:
    model = get_model("mlp-sine")
    p = model.init(3)
    x = torch.linspace(-5, 5, 30).unsqueeze(1)
    w_true = torch.randn(1, 40, generator=torch.Generator().manual_seed(0))
    y = model.features(p, x) @ w_true.T + 0.7
    fit = refit_head(model, p, x, y, ridge_lambda=1e-6)
    assert float(loss_fn(model, fit, x, y)) < 1e-4


def test_invalid_configs_raise() -> None:
    with pytest.raises(MetaLearningError):
        AdaptConfig(steps=-1)
    with pytest.raises(MetaLearningError):
        AdaptConfig(max_grad_norm=0.0)
    with pytest.raises(MetaLearningError):
        AdaptConfig(train="neck")  # type: ignore[arg-type]


def test_ridge_statistics_accumulate_one_sample_at_a_time() -> None:
    """The primal ridge solve only needs running sums, which a device updates per sample."""
    model = get_model("mlp-sine")
    p = model.init(1)
    x = torch.linspace(-4, 4, 12).unsqueeze(1)
    y = torch.sin(x)
    gram = torch.eye(41) * 0.5
    rhs = torch.zeros(41, 1)
    for i in range(len(x)):  # online accumulation
        a = torch.cat([model.features(p, x[i : i + 1]), torch.ones(1, 1)], dim=1)
        gram = gram + a.T @ a
        rhs = rhs + a.T @ y[i : i + 1]
    w = torch.linalg.solve(gram, rhs)
    fit = refit_head(model, p, x, y, ridge_lambda=0.5)
    assert torch.allclose(fit["head.weight"], w[:-1].T, atol=1e-4)
    assert torch.allclose(fit["head.bias"], w[-1], atol=1e-4)
