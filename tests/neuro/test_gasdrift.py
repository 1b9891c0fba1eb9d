"""The gasdrift event task: level-crossing events, ageing drift, poisoning, stationary control."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainml.errors import MetaLearningError
from chainml.meta.tasks import TaskFamily
from chainml.meta.tasks.gasdrift import GasDriftFamily, level_crossing_events


def test_level_crossing_counts_each_step_crossed() -> None:
    signal = np.array([[0.2, 0.9, 1.1, 3.4, 2.6, 2.2]])[:, :, None]  # (1, T, 1) in steps
    ev = level_crossing_events(signal)
    assert ev[0, :, 0].tolist() == [0, 0, 1, 2, 0, 0]  # ON
    assert ev[0, :, 1].tolist() == [0, 0, 0, 0, 1, 0]  # OFF
    assert ev[0, :, 0].sum() - ev[0, :, 1].sum() == np.floor(2.2) - np.floor(0.2)


def test_inputs_are_event_counts_and_targets_concentrations(gas: TaskFamily) -> None:
    ep = gas.task(0, 1).episode(20, 30)
    assert ep.x_support.shape == (20, 16, 8)
    assert torch.all(ep.x_support >= 0) and torch.equal(ep.x_support, ep.x_support.round())
    assert torch.all((ep.y_query >= 0) & (ep.y_query <= 5))
    events = ep.x_query[:, :, :4].sum(dim=(1, 2))  # ON events grow with concentration
    assert np.corrcoef(events.numpy(), ep.y_query[:, 0].numpy())[0, 1] > 0.5


def test_ageing_and_poisoning_lower_sensitivity_and_the_control_is_stationary() -> None:
    ageing, still = GasDriftFamily(), GasDriftFamily(ageing=False)
    task = ageing.task(0, 5, "eval")
    assert np.all(task.gains_at(100) < task.gains_at(10)) and np.all(
        task.gains_at(10) < task.p["gain"] + 1e-12
    )
    assert np.allclose(still.task(0, 5, "eval").gains_at(100), task.p["gain"])

    def on_events(t, draw: int) -> float:
        return float(t.episode(200, 1, draw=draw).x_support[:, :, :4].sum())

    assert on_events(task, 150) < 0.85 * on_events(task, 0)
    # noise crossings add events that poisoning does not remove
    assert on_events(task.poisoned(0.5), 0) < 0.75 * on_events(task, 0)
    with pytest.raises(MetaLearningError, match="poisoning"):
        task.poisoned(1.5)
