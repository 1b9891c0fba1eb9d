"""LIF neurons and the surrogate gradient: torch.func works through the registered SNN."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

from chainml.meta.adapt import AdaptConfig, adapt, loss_fn
from chainml.meta.models import get_model
from chainml.meta.tasks import TaskFamily
from chainml.neuro.lif import SURROGATE_SLOPE, lif_scan, spike_fn


def test_spike_is_a_step_forward_and_a_fast_sigmoid_backward() -> None:
    u = torch.tensor([-1.0, -0.1, 0.1, 2.0])
    assert spike_fn(u).tolist() == [0.0, 0.0, 1.0, 1.0]
    g = vmap(grad(lambda x: spike_fn(x)))(u)
    expected = 0.5 * SURROGATE_SLOPE / (1 + SURROGATE_SLOPE * u.abs()) ** 2
    assert torch.allclose(g, expected)


def test_lif_fires_at_the_rate_its_current_implies() -> None:
    current = torch.tensor([0.0, 0.1, 0.5]).expand(40, 3)  # (T, neurons)
    spikes, v = lif_scan(current, time_dim=0, beta=0.8, threshold=1.0)
    # 0.1 settles at v = 0.5 < threshold: silent. 0.5 with reset by subtraction fires at a
    # steady rate; 0 never charges.
    assert spikes[:, 0].sum() == 0 and spikes[:, 1].sum() == 0
    assert 8 <= spikes[:, 2].sum() <= 25
    assert torch.all(v[:, 1] < 1.0)


@pytest.mark.parametrize("arch_id", ["snn-gasdrift", "snn-sine"])
def test_registered_snn_has_the_mlp_interface(arch_id: str) -> None:
    model = get_model(arch_id)
    spec = model.spec
    assert spec.head == ("head.weight", "head.bias") and spec.loss == "mse"
    p = model.init(3)
    spec.validate(p)
    x = torch.rand(5, *spec.input_shape).round()
    assert model(p, x).shape == (5, 1)
    feats = model.features(p, x)
    assert feats.shape == (5, model.module.head.in_features)
    assert torch.all((feats >= 0) & (feats <= 1))  # spike rates
    assert all(torch.equal(p[k], model.init(3)[k]) for k in p)


def test_engine_adapt_grad_and_vmap_run_through_the_snn(gas: TaskFamily) -> None:
    """The engine's one adapt (torch.func.grad), batched with vmap, lowers the support loss."""
    model = get_model("snn-gasdrift")
    p = model.init(0)
    p = {
        k: v * (3.0 if k.startswith("body") and k.endswith("weight") else 1.0) for k, v in p.items()
    }
    ep = gas.episodes(0, range(4), "eval", 10, 10)
    cfg = AdaptConfig(steps=5, inner_lr=0.05)

    def support_loss(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return loss_fn(model, p, xs, ys), loss_fn(model, adapt(model, p, xs, ys, cfg), xs, ys)

    before, after = vmap(support_loss)(ep.x_support, ep.y_support)
    assert torch.all(after < before)
