"""Event-driven learning: the trigger, and the updates, energy and radio it saves in a fleet."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chainml.errors import MetaLearningError
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import ChipConfig
from chainml.neuro.events import EventTrigger, TriggerConfig
from chainml.neuro.fleet import FleetResult, run_fleet
from chainml.neuro.metatrain import LifetimeSampling, MetaTrainConfig, meta_train
from chainml.neuro.plasticity import PlasticSNN
from chainml.swarm.config import SwarmConfig

ARCH = "snn-gasdrift"


def test_trigger_fires_when_the_error_grows_and_not_on_a_steady_one() -> None:
    trigger = EventTrigger(TriggerConfig(ratio=1.2, smoothing=0.5, settle=2))
    steady = [1.0, 1.1, 0.9, 1.05, 0.95, 1.1, 1.0, 0.9]
    assert not any(trigger.observe(e) for e in steady)
    assert trigger.reference == pytest.approx(1.05)
    fired = [trigger.observe(e) for e in (1.3, 1.5, 1.6)]
    assert fired == [False, True, False]  # smoothed 1.15 < 1.26 < 1.33; then settling again
    assert trigger.fired == 1 and trigger.threshold() is None
    with pytest.raises(MetaLearningError):
        TriggerConfig(ratio=0.5)


def _recipe(ratio: float | None, max_silent: int = 8) -> Recipe:
    base = Recipe.for_family("gasdrift")
    assert base.spiking is not None
    return replace(base, spiking=replace(base.spiking, event_ratio=ratio, max_silent=max_silent))


def test_event_driven_devices_send_fewer_updates_and_spend_less(
    gas: TaskFamily, trained: dict
) -> None:
    """The swarm's round in process (event decision, plastic node step, the recipe's
    aggregation, server step): from a meta-trained version, event-driven devices send far
    fewer updates and spend far less energy than always-sending ones (the loss they pay for it
    is the slow test below, from a version trained like the bench's)."""
    always = run_fleet(gas, ARCH, _recipe(None), trained, rounds=10, devices=8)
    event = run_fleet(gas, ARCH, _recipe(1.3), trained, rounds=10, devices=8)
    assert always.updates_sent() == 8 * 9 and event.sent[0].all()
    assert 0 < event.updates_sent() < 0.5 * always.updates_sent()
    assert event.energy_j[1:].sum() < 0.5 * always.energy_j[1:].sum()
    assert np.all(event.radio_j[~event.sent] == 0) and np.all(event.radio_j[event.sent] > 0)
    assert np.all(event.energy_j[~event.sent] < 0.1 * event.energy_j[event.sent].min())


def test_a_silent_device_resyncs_after_the_recipe_s_limit(gas: TaskFamily, trained: dict) -> None:
    """With a trigger that cannot fire, a device still sends every ``max_silent`` rounds."""
    run = run_fleet(gas, ARCH, _recipe(100.0, max_silent=3), trained, rounds=7, devices=3)
    assert run.sent.sum(axis=1).tolist() == [3, 0, 0, 3, 0, 0, 3]
    assert {r for rs in run.reasons for r in rs} == {"first", "quiet", "silence"}


@pytest.fixture(scope="module")
def deployed(gas: TaskFamily) -> dict:
    """The version a fleet is deployed with in the bench: noise-injected meta-training (chip
    noise, bit depth drawn per iteration), 400 iterations of 16 tasks (about 2 minutes)."""
    cfg = MetaTrainConfig(
        iterations=400,
        sampling=LifetimeSampling(meta_batch=16, shots=10, queries=20),
        chip=ChipConfig(synaptic_sigma=0.05, membrane_sigma=0.05),
        bits_choices=(None, 4, 6, 8),
    )
    return meta_train(PlasticSNN(ARCH), gas, cfg).params


@pytest.mark.slow
def test_event_driven_fleet_sends_under_30pct_at_under_10pct_loss_cost(
    gas: TaskFamily, deployed: dict
) -> None:
    """The issue's target on a small fleet (12 devices, 16 rounds, ``swarm run --task
    gasdrift`` recipes at the bench's fleet learning rate): with the default event-driven
    recipe, devices send at most 30% of the updates and deliver at most 10% more loss than
    devices that send every round. The same trigger without pooled updates (each update covers
    only the round it is sent in, ratio 1.2: the recipe before) learns too little from the
    few updates and misses the loss target."""

    def fleet(event_driven: bool, **spiking: float) -> FleetResult:
        recipe = SwarmConfig(task="gasdrift", server_lr=0.01, event_driven=event_driven).recipe()
        assert recipe.spiking is not None
        recipe = replace(recipe, spiking=replace(recipe.spiking, **spiking))
        return run_fleet(gas, ARCH, recipe, deployed, rounds=16, devices=12)

    possible = 12 * 15
    always, event = fleet(False), fleet(True)
    legacy = fleet(True, update_memory=1, event_ratio=1.2)
    assert always.updates_sent() == possible
    assert 0 < event.updates_sent() <= 0.3 * possible
    assert event.mean_loss() <= 1.1 * always.mean_loss()
    assert legacy.updates_sent() <= 0.3 * possible
    assert legacy.mean_loss() > 1.1 * always.mean_loss()
