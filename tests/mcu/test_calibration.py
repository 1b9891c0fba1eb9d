"""Post-training quantization sees the range of the tasks a device will meet: its calibration
inputs come from many training tasks, so held-out tasks' inputs are rarely clipped."""

from __future__ import annotations

import numpy as np
import pytest

from chainml.mcu.evaluate import family_inputs
from chainml.mcu.export import calibration_inputs, deployable_arch
from chainml.mcu.graph import from_params
from chainml.mcu.ptq import quantize_graph
from chainml.meta.models import get_model
from chainml.meta.tasks import get_family
from tests.mcu.conftest import FAMILY_NAMES


def clipped_fraction(name: str, calibration: np.ndarray) -> float:
    family = get_family(name)
    arch_id = deployable_arch(family)
    assert arch_id is not None
    graph = from_params(arch_id, get_model(arch_id).init(0), family.kind)
    model = quantize_graph(graph, calibration)
    held_out = family_inputs(family, graph, "eval", 2000, 3, per_task=2)
    q = np.rint(held_out / model.input_scale) + model.input_zp
    return float(((q < -128) | (q > 127)).mean())


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_held_out_inputs_are_rarely_clipped(name: str) -> None:
    family = get_family(name)
    arch_id = deployable_arch(family)
    assert arch_id is not None
    graph = from_params(arch_id, get_model(arch_id).init(0), family.kind)
    assert clipped_fraction(name, calibration_inputs(family, graph)) < 0.005


def test_a_calibration_from_few_tasks_clips_coldchain() -> None:
    """The run in which it must hurt: 512 inputs from the first 26 training tasks (the old
    calibration) clip a large share of held-out coldchain readings."""
    family = get_family("coldchain")
    graph = from_params("mlp-coldchain", get_model("mlp-coldchain").init(0), family.kind)
    narrow = family_inputs(family, graph, "train", 512, 7, per_task=10)
    assert clipped_fraction("coldchain", narrow) > 0.05
