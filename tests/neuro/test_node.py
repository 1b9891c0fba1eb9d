"""The spiking node step and device protocol the swarm runs: the recipe commits the rule's and
the chip's settings, the version carries the rule, devices adapt with no backprop, the node's
meta-gradient reaches the rule, and a device's bits do not depend on its batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from chainml.errors import ConfigError
from chainml.meta.federated import NodeConfig, node_step, node_steps
from chainml.meta.models import get_model
from chainml.meta.protocols import device_protocol
from chainml.meta.recipe import Recipe, SpikingRecipe
from chainml.meta.sparse import flatten_params, param_offsets
from chainml.meta.tasks import TaskFamily
from chainml.neuro import node as neuro_node
from chainml.neuro.chip import ChipState
from chainml.neuro.node import Calibration, device_adapt, event_decision, plastic_net
from chainml.protocol.payloads import decode_version, encode_update
from chainml.swarm.services import genesis_weights

ARCH = "snn-gasdrift"
RECIPE = Recipe.for_family("gasdrift")
RECIPE_CHIP = neuro_node.chip_config(RECIPE.spiking)  # type: ignore[arg-type]
EVENTS = replace(RECIPE, spiking=replace(RECIPE.spiking, event_ratio=1.3))  # type: ignore[arg-type]


def test_the_recipe_commits_the_spiking_settings_and_leaves_other_families_alone() -> None:
    assert RECIPE.spiking is not None and RECIPE.spiking.chip_bits == 8
    raw = json.loads(RECIPE.canonical())
    assert raw["spiking"]["synaptic_sigma"] == RECIPE.spiking.synaptic_sigma
    assert Recipe.parse(RECIPE.canonical()) == RECIPE
    for family in ("sine", "meter", "digits"):
        assert b"spiking" not in Recipe.for_family(family).canonical()
    with pytest.raises(ConfigError, match=r"spiking\.chip_bits"):
        Recipe.parse(RECIPE.canonical().replace(b'"chip_bits":8', b'"chip_bits":"8"'))
    with pytest.raises(ConfigError, match="unknown spiking recipe keys"):
        Recipe.parse(RECIPE.canonical().replace(b'"passes"', b'"pases"'))
    with pytest.raises(ConfigError, match="invalid spiking recipe"):
        SpikingRecipe(synaptic_sigma=-0.1)


def test_the_genesis_version_carries_the_rule_and_the_recipe() -> None:
    data, arch = genesis_weights("gasdrift", 0)
    version = decode_version(data, arch)
    assert arch == ARCH and version.recipe == RECIPE
    rule = {k for k in version.params if k.startswith("rule.")}
    assert {"rule.alpha.body_0", "rule.log_eta.head", "rule.feedback.body_2"} <= rule
    net = plastic_net(ARCH, RECIPE.spiking)
    assert all(torch.equal(version.params[k], v) for k, v in net.init(0).items())


class _NoBackprop:
    """Counts every backward/grad call; ``forbid`` makes them raise."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, forbid: bool) -> None:
        self.calls = 0
        real_grad, real_backward = torch.autograd.grad, torch.Tensor.backward

        def grad(*args, **kwargs):
            self.calls += 1
            if forbid:
                raise AssertionError("backprop on the device path")
            return real_grad(*args, **kwargs)

        def backward(*args, **kwargs):
            self.calls += 1
            if forbid:
                raise AssertionError("backprop on the device path")
            return real_backward(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", grad)
        monkeypatch.setattr(torch.Tensor, "backward", backward)


@pytest.fixture
def no_backprop(monkeypatch: pytest.MonkeyPatch) -> Iterator[_NoBackprop]:
    yield _NoBackprop(monkeypatch, forbid=True)


def test_devices_adapt_by_the_rule_with_no_backprop(
    gas: TaskFamily, trained: dict, no_backprop: _NoBackprop
) -> None:
    """The device protocol and the event check run with every backward pass forbidden, and
    the rule's traces carry no autograd graph even from parameters that require grad."""
    loss, _, _ = device_protocol(trained, gas, RECIPE, n_tasks=100)
    tasks = [gas.task(0, i, "eval") for i in range(100)]
    after, before, _ = neuro_node.device_protocol_loss(
        trained, ARCH, tasks, RECIPE, shots=RECIPE.device_shots, queries=50
    )
    assert loss == pytest.approx(float(after.mean()))
    assert after.mean() < 0.5 * before.mean()  # the rule adapts the device
    task = gas.task(0, 3, "train")
    decision = event_decision(ARCH, EVENTS, task, 5, Calibration(2, trained))
    assert decision.check_error > 0 and decision.check_j > 0
    net = plastic_net(ARCH, RECIPE.spiking)
    params = {k: v.clone().requires_grad_(True) for k, v in trained.items()}
    ep = gas.episodes(0, range(2), "eval", 10, 10)
    traces, _ = device_adapt(net, params, ep.x_support, ep.y_support, ChipState(RECIPE_CHIP, 0))
    assert all(t.grad_fn is None and not t.requires_grad for t in traces.values())
    assert no_backprop.calls == 0


def test_the_node_step_takes_one_meta_gradient_through_the_rule(
    gas: TaskFamily, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One gradient per device (the meta-gradient; the rule's passes add none), and it reaches
    the weights and every kind of rule parameter."""
    counter = _NoBackprop(monkeypatch, forbid=False)
    model = get_model(ARCH)
    dense = replace(RECIPE, top_fraction=1.0)
    tasks = [gas.task(0, i, "train") for i in range(3)]
    results = node_steps(model, model.init(0), tasks, NodeConfig(dense, 1))
    assert counter.calls == 3
    spec, offsets = model.spec, param_offsets(model.spec)
    direction = results[0].update.to_dense()
    for i, p in enumerate(spec.params):
        block = direction[offsets[i] : offsets[i + 1]]
        assert np.any(block != 0), p.name
    assert all(r.metrics["loss_after"] < r.metrics["loss_before"] for r in results)


def test_a_device_update_is_the_same_bits_alone_or_in_its_group(gas: TaskFamily) -> None:
    model = get_model(ARCH)
    params = model.init(1)
    tasks = [gas.task(0, i, "train") for i in range(4)]
    group = node_steps(model, params, tasks, NodeConfig(RECIPE, 3))
    alone = node_step(model, params, tasks[2], NodeConfig(RECIPE, 3))
    assert encode_update(group[2].update) == encode_update(alone.update)
    assert encode_update(group[1].update) != encode_update(group[2].update)
    flat = flatten_params(params, model.spec)
    assert group[2].update.to_dense().shape == flat.shape


def test_a_sender_pools_the_samples_of_the_rounds_it_sat_out(gas: TaskFamily) -> None:
    """An event-driven device that was silent since round 2 sends, in round 5, one update over
    the samples of rounds 3-5 (and pays for each round's adaptation and meta-gradient); a
    device that sent last round, or never, sends exactly the single-round update."""
    model = get_model(ARCH)
    params = model.init(1)
    task = gas.task(0, 1, "train")
    spiking = RECIPE.spiking
    assert spiking is not None and spiking.update_memory == spiking.max_silent
    assert neuro_node.held_rounds(5, 2, spiking) == [3, 4, 5]
    assert neuro_node.held_rounds(5, None, spiking) == [5]
    assert neuro_node.held_rounds(20, 2, spiking) == list(range(21 - spiking.update_memory, 21))
    single = node_step(model, params, task, NodeConfig(RECIPE, 5))
    after_one = node_step(model, params, task, NodeConfig(RECIPE, 5, (4,)))
    pooled = node_step(model, params, task, NodeConfig(RECIPE, 5, (2,)))
    assert encode_update(after_one.update) == encode_update(single.update)
    assert encode_update(pooled.update) != encode_update(single.update)
    assert pooled.num_examples == 3 * single.num_examples
    assert pooled.metrics["loss_after"] == single.metrics["loss_after"]  # this round's calibration
    assert pooled.metrics["compute_j"] > 2.5 * single.metrics["compute_j"]
    legacy = replace(RECIPE, spiking=replace(spiking, update_memory=1))
    alone = node_step(model, params, task, NodeConfig(legacy, 5, (2,)))
    assert encode_update(alone.update) == encode_update(single.update)


def test_a_recorded_spiking_recipe_without_update_memory_keeps_single_round_updates() -> None:
    raw = json.loads(RECIPE.canonical())
    del raw["spiking"]["update_memory"]
    old = Recipe.from_json(raw)
    assert old.spiking is not None and old.spiking.update_memory == 1
    assert Recipe.parse(RECIPE.canonical()).spiking == RECIPE.spiking
