"""Meta-learned plasticity: the device adapts by running the rule, and the rule is learned."""

from __future__ import annotations

import torch

from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import FLOAT, ChipState
from chainml.neuro.evaluate import evaluate_plastic
from chainml.neuro.plasticity import PlasticityConfig, PlasticSNN


def test_running_the_rule_lowers_the_held_out_loss(
    net: PlasticSNN, gas: TaskFamily, trained: dict
) -> None:
    ev = evaluate_plastic(net, trained, gas, n_tasks=100)
    untrained = evaluate_plastic(net, net.init(0), gas, n_tasks=100)
    assert ev.loss_mean < 0.5 * ev.loss_before  # adaptation vs the meta-weights alone
    assert ev.loss_mean < 0.5 * untrained.loss_mean  # meta-training vs the initialisation
    assert 0.01 < ev.spike_density < 0.6


def test_plasticity_coefficients_gate_each_synapse(
    net: PlasticSNN, gas: TaskFamily, trained: dict
) -> None:
    """``alpha`` scales what a trace transmits: all zero, the rule changes nothing; zero on the
    hidden layers only, the readout traces still adapt the device."""
    ep = gas.episodes(0, range(20), "eval", 10, 20)

    def adapted(params: dict) -> torch.Tensor:
        traces, _ = net.adapt(params, ep.x_support, ep.y_support)
        return net.loss(params, traces, ep.x_query, ep.y_query)[0]

    unadapted = net.loss(trained, net.zero_traces(trained, 20), ep.x_query, ep.y_query)[0]
    off = {k: torch.zeros_like(v) if k.startswith("rule.alpha.") else v for k, v in trained.items()}
    assert torch.allclose(adapted(off), unadapted)
    head_only = {
        k: torch.zeros_like(v) if k.startswith("rule.alpha.body") else v for k, v in trained.items()
    }
    assert adapted(head_only).mean() < 0.9 * unadapted.mean()
    assert not torch.allclose(adapted(head_only), adapted(trained))


def test_a_device_adapts_without_backprop_and_only_its_traces_change(
    gas: TaskFamily, trained: dict
) -> None:
    head_only = PlasticSNN("snn-gasdrift", PlasticityConfig(passes=2, plastic=("head",)))
    params = {k: v for k, v in trained.items() if not k.endswith(("body_0", "body_2"))}
    before = {k: v.clone() for k, v in params.items()}
    ep = gas.episodes(0, range(5), "eval", 10, 20)
    with torch.no_grad():  # no autograd graph at all: the rule is forward-only arithmetic
        traces, history = head_only.adapt(params, ep.x_support, ep.y_support, ChipState(FLOAT, 0))
        loss0, _ = head_only.loss(params, head_only.zero_traces(params, 5), ep.x_query, ep.y_query)
        loss1, _ = head_only.loss(params, traces, ep.x_query, ep.y_query)
    assert set(traces) == {"head"} and len(history) == 2
    assert all(torch.equal(params[k], before[k]) for k in params)
    assert loss1.mean() < loss0.mean()


def test_the_meta_gradient_reaches_every_plasticity_parameter(
    net: PlasticSNN, gas: TaskFamily
) -> None:
    params = {k: v.clone().requires_grad_(True) for k, v in net.init(1).items()}
    ep = gas.episodes(0, range(3), "train", 10, 10)
    traces, _ = net.adapt(params, ep.x_support, ep.y_support)
    loss, _ = net.loss(params, traces, ep.x_query, ep.y_query)
    loss.mean().backward()
    for k, v in params.items():
        if k.startswith("rule."):
            assert v.grad is not None and v.grad.abs().sum() > 0, k
