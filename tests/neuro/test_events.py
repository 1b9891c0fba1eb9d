"""Event-driven learning: the trigger, and the updates, energy and radio it saves."""

from __future__ import annotations

import pytest

from chainml.device.radio import BleRadio
from chainml.errors import MetaLearningError
from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import ChipConfig
from chainml.neuro.energy import send_energy_j, update_bytes
from chainml.neuro.events import EventTrigger, TriggerConfig
from chainml.neuro.plasticity import PlasticSNN
from chainml.neuro.scenario import StreamConfig, run_event_stream

CHIP = ChipConfig(bits=8, synaptic_sigma=0.05, membrane_sigma=0.05)


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


def test_event_driven_devices_send_fewer_updates_and_spend_less(
    net: PlasticSNN, gas: TaskFamily, trained: dict
) -> None:
    tasks = [gas.task(0, i, "eval") for i in range(8)]
    cfg = StreamConfig(rounds=12)
    always = run_event_stream(net, trained, tasks, cfg, CHIP, None)
    event = run_event_stream(net, trained, tasks, cfg, CHIP, TriggerConfig(ratio=1.1, settle=2))
    assert always.updates_sent() == 8 * 11
    assert 0 < event.updates_sent() < 0.5 * always.updates_sent()
    # the radio is charged by the fleet's BLE model, per update actually sent
    per_update = BleRadio().send(update_bytes(net, 8)).energy_j
    assert send_energy_j(net, 8) == per_update
    assert event.radio_j.sum() == pytest.approx(event.updates.sum() * per_update)
    assert event.energy_j < 0.6 * always.energy_j
    assert event.mean_loss() < 1.5 * always.mean_loss()


def test_a_full_sample_buffer_forces_the_deferred_update(
    net: PlasticSNN, gas: TaskFamily, trained: dict
) -> None:
    """With an error trigger that never fires, a device still learns (all it buffered) and
    sends once its buffer of labelled rounds is full; the replay reproduces always-updating."""
    tasks = [gas.task(0, i, "eval") for i in range(4)]
    cfg = StreamConfig(rounds=7)
    never = TriggerConfig(ratio=1e9)
    run = run_event_stream(net, trained, tasks, cfg, CHIP, never, buffer_rounds=3)
    assert run.updates.sum(axis=1).tolist() == [4, 0, 0, 4, 0, 0, 4]
    assert not run.error_triggered.any()
    ideal = ChipConfig()  # noiseless, so the replay can be compared with the online device
    always = run_event_stream(net, trained, tasks, cfg, ideal, None)
    deferred = run_event_stream(net, trained, tasks, cfg, ideal, never, buffer_rounds=3)
    assert deferred.losses[6] == pytest.approx(always.losses[6], rel=1e-4)
