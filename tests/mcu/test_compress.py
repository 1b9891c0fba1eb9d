"""Pruning and distillation: what they remove, and that the smaller models still deploy
bit-exact with less flash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chainml.errors import ConfigError
from chainml.mcu import distill, evaluate, prune
from chainml.mcu.export import compressor, deploy, family_inputs
from chainml.mcu.graph import from_params
from chainml.mcu.int8 import run
from chainml.mcu.tflite import tflm_run
from chainml.meta.models import get_model
from chainml.meta.tasks import get_family


@pytest.fixture(scope="module")
def digits():
    family = get_family("digits")
    graph = from_params("mlp-digits", get_model("mlp-digits").init(0), family.kind)
    return family, graph


def test_unstructured_pruning_zeroes_the_smallest_weights(digits) -> None:
    _, graph = digits
    pruned, masks = prune.unstructured(graph, 0.75)
    assert masks[-1] is None
    for before, after, mask in zip(graph.layers[:-1], pruned.layers[:-1], masks[:-1], strict=True):
        assert mask is not None
        assert abs((~mask).mean() - 0.75) < 0.01
        kept = np.abs(before.weight[mask]).min()
        dropped = np.abs(before.weight[~mask]).max()
        assert dropped <= kept  # magnitude order
        assert np.all(after.weight[~mask] == 0)
    np.testing.assert_array_equal(pruned.layers[-1].weight, graph.layers[-1].weight)  # head kept
    assert prune.nonzero_weights(pruned) < 0.4 * graph.num_weights


def test_structured_pruning_shrinks_layers_and_flash(digits, tmp_path: Path) -> None:
    family, graph = digits
    pruned = prune.structured(graph, 0.5)
    assert [la.weight.shape for la in pruned.layers] == [(32, 64), (32, 32), (5, 32)]
    # The kept units are the largest-norm ones, with their weights unchanged.
    norms = np.linalg.norm(graph.layers[0].weight, axis=1)
    kept = np.sort(np.argsort(-norms)[:32])
    np.testing.assert_array_equal(pruned.layers[0].weight, graph.layers[0].weight[kept])
    cal = family_inputs(family, graph, "train", 128, 0)
    base = deploy(graph, cal, tmp_path / "base")
    small = deploy(pruned, cal, tmp_path / "small")
    assert small.footprint.flash_bytes < 0.5 * base.footprint.flash_bytes
    x = small.model.quantize_input(family_inputs(family, graph, "eval", 200, 1))
    np.testing.assert_array_equal(run(small.model, x), tflm_run(small.tflite, x))


def test_structured_pruning_of_the_cnn_keeps_channels_consistent() -> None:
    family = get_family("vibration")
    graph = from_params("cnn-vibration", get_model("cnn-vibration").init(0), family.kind)
    pruned = prune.structured(graph, 0.5)
    shapes = [la.weight.shape for la in pruned.layers if la.weight is not None]
    assert shapes == [(4, 7, 1), (8, 5, 4), (8, 5, 8), (2, 8)]
    assert pruned.shapes()[-1] == (2,)


def test_distillation_trains_a_student_that_beats_its_random_init(digits) -> None:
    family, teacher = digits
    es = evaluate.eval_set(family, teacher, n_tasks=100)
    pupil = distill.student(teacher, 0.5, seed=0)
    assert pupil.num_weights < 0.5 * teacher.num_weights
    inputs = family_inputs(family, teacher, "train", 2048, 0)
    trained = distill.distill(teacher, pupil, inputs, steps=150, family=family)
    assert evaluate.score_float(trained, es) > evaluate.score_float(pupil, es) + 0.02


def test_masks_survive_fine_tuning(digits) -> None:
    family, graph = digits
    pruned, masks = prune.unstructured(graph, 0.5)
    inputs = family_inputs(family, graph, "train", 512, 0)
    tuned = distill.distill(graph, pruned, inputs, steps=20, masks=masks)
    for la, mask in zip(tuned.layers, masks, strict=True):
        if mask is not None:
            assert np.all(la.weight[~mask] == 0) and np.any(la.weight[mask] != 0)


def test_compressor_spec_errors() -> None:
    with pytest.raises(ConfigError, match=r"structured:0\.5"):
        compressor("structured")
    with pytest.raises(ConfigError, match="unknown compression"):
        compressor("quantum:0.5")
    with pytest.raises(ConfigError, match="keep fraction"):
        prune.structured(from_params("mlp-sine", get_model("mlp-sine").init(0), "regression"), 0)


@pytest.mark.parametrize("spec", ["unstructured:0.5", "structured:0.5", "distill:0.5"])
def test_compressor_specs_shrink_the_model(digits, spec: str) -> None:
    family, graph = digits
    small = compressor(spec, steps=5)(graph, family)
    assert small.layers[-1].weight.shape[0] == graph.layers[-1].weight.shape[0]
    assert prune.nonzero_weights(small) < 0.6 * prune.nonzero_weights(graph)
