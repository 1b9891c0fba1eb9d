"""Pruning, distillation and 4-bit storage: what they remove, that the smaller models still
deploy bit-exact (TFLM and QEMU) with less measured flash, and that their training uses the
device protocol a deployed device runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chainml.errors import ConfigError
from chainml.mcu import distill, evaluate, prune, qemu
from chainml.mcu.codegen import pack_int4, sparse_blocks, weight_storage
from chainml.mcu.compress import parse
from chainml.mcu.evaluate import DeviceProtocol
from chainml.mcu.export import deploy, family_inputs
from chainml.mcu.graph import from_params
from chainml.mcu.int8 import run
from chainml.mcu.ptq import quantize_graph
from chainml.mcu.tflite import tflm_run
from chainml.meta.models import get_model
from chainml.meta.protocols import device_protocol
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import get_family


@pytest.fixture(scope="module")
def digits():
    family = get_family("digits")
    graph = from_params("mlp-digits", get_model("mlp-digits").init(0), family.kind)
    return family, graph


def protocol_of(name: str) -> DeviceProtocol:
    return DeviceProtocol.from_recipe(Recipe.for_family(name))


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


def test_int4_and_bitmask_packing_round_trip() -> None:
    v = np.array([-7, -1, 0, 1, 7, 3, -8], dtype=np.int8)
    packed = pack_int4(v)
    assert len(packed) == 4 and packed[0] == (0x9 | (0xF << 4))  # -7 -> 0x9, -1 -> 0xF
    low = ((packed & 0xF).astype(np.int16) ^ 8) - 8
    high = ((packed >> 4).astype(np.int16) ^ 8) - 8
    np.testing.assert_array_equal(np.stack([low, high], 1).reshape(-1)[: len(v)], v)
    with pytest.raises(ValueError, match="int4"):
        pack_int4(np.array([9]))
    w = np.array([[0, 5, 0], [0, 0, -3]], dtype=np.int8)
    mask, values = sparse_blocks(w)
    assert mask.tolist() == [0b100010] and values.tolist() == [5, -3]


@pytest.mark.parametrize(
    ("name", "arch_id"), [("digits", "mlp-digits"), ("vibration", "cnn-vibration")]
)
def test_int4_and_sparse_storage_run_bit_exact_in_less_flash(
    name: str, arch_id: str, tmp_path: Path
) -> None:
    """4-bit bodies and 80%-pruned bodies: the C build stores them packed (int4 nibbles, or a
    bitmask plus the non-zero values), yet its outputs under QEMU equal the int8 reference
    and TFLM's on >= 1,000 vectors, in less measured flash than the int8 build."""
    family = get_family(name)
    graph = from_params(arch_id, get_model(arch_id).init(1), family.kind)
    cal = family_inputs(family, graph, "train", 256, 0)
    x_float = family_inputs(family, graph, "eval", 1000, 2)
    base = deploy(graph, cal, tmp_path / "int8")
    sparse_graph, _ = prune.unstructured(graph, 0.8)
    variants = {
        "int4": deploy(graph, cal, tmp_path / "int4", body_bits=4),
        "sparse": deploy(sparse_graph, cal, tmp_path / "sparse"),
    }
    for storage, dep in variants.items():
        body = [la for la in dep.model.layers[:-1] if la.weight is not None]
        assert {weight_storage(la) for la in body} == {storage}
        assert dep.footprint.flash_bytes < 0.8 * base.footprint.flash_bytes, storage
        x = dep.model.quantize_input(x_float)
        ref = run(dep.model, x)
        assert len(np.unique(ref)) > 10
        np.testing.assert_array_equal(ref, tflm_run(dep.tflite, x))
        out = qemu.run_harness(dep.build.harness, x, dep.model.output_dim).outputs
        np.testing.assert_array_equal(ref, out)
    int4_layers = [la for la in variants["int4"].model.layers[:-1] if la.weight is not None]
    assert all(np.abs(la.weight).max() <= 7 for la in int4_layers)


def test_a_swapped_nibble_order_is_caught_under_qemu(tmp_path: Path) -> None:
    """The int4 comparison can fail: a C build that reads the high nibble first disagrees."""
    from chainml.mcu.armbuild import build
    from chainml.mcu.codegen import generate

    family = get_family("digits")
    graph = from_params("mlp-digits", get_model("mlp-digits").init(1), family.kind)
    model = quantize_graph(graph, family_inputs(family, graph, "train", 256, 0), body_bits=4)
    sources = generate(model)
    c = sources["chainml_model.c"]
    broken = c.replace("int32_t w = (i & 1) ?", "int32_t w = !(i & 1) ?")
    assert broken != c
    built = build({**sources, "chainml_model.c": broken}, tmp_path)
    x = model.quantize_input(family_inputs(family, graph, "eval", 200, 2))
    out = qemu.run_harness(built.harness, x, model.output_dim).outputs
    assert not np.array_equal(run(model, x), out)


def test_quantization_aware_training_lands_on_the_int4_grid(digits) -> None:
    """A graph trained with 4-bit fake quantization quantizes to exactly the weights it was
    trained with: the int4 export computes what training optimised."""
    family, graph = digits
    inputs = family_inputs(family, graph, "train", 512, 0)
    trained = distill.distill(graph, graph, inputs, steps=5, weight_bits=4)
    assert trained.meta["weight_bits"] == "4"
    model = quantize_graph(trained, inputs, body_bits=4)
    for la, q in zip(trained.layers[:-1], model.layers[:-1], strict=True):
        if la.weight is None:
            continue
        shape = (-1,) + (1,) * (la.weight.ndim - 1)
        deq = q.weight.astype(np.float32) * q.weight_scales.reshape(shape)
        np.testing.assert_allclose(deq, la.weight, rtol=1e-5, atol=1e-7)
        assert np.abs(q.weight).max() == 7


def test_the_score_is_the_products_device_protocol() -> None:
    """The MCU pipeline's float score equals ``chainml.meta.protocols.device_protocol`` (the
    product's evaluation: the recipe's device shots and ridge strength, the same held-out
    tasks), for regression and classification."""
    for name, arch_id in (("sine", "mlp-sine"), ("coldchain", "mlp-coldchain")):
        family = get_family(name)
        recipe = Recipe.for_family(name)
        params = get_model(arch_id).init(2)
        graph = from_params(arch_id, params, family.kind)
        es = evaluate.eval_set(family, graph, DeviceProtocol.from_recipe(recipe), n_tasks=100)
        assert es.x_support.shape[1] == recipe.device_shots * family.n_way
        ours = evaluate.score_float(graph, es)
        loss, _, acc = device_protocol(params, family, recipe, arch_id=arch_id, n_tasks=100)
        theirs = acc if family.kind == "classification" else loss
        assert theirs is not None
        assert abs(ours - theirs) <= 2e-3 * max(1.0, abs(theirs)), (name, ours, theirs)


def test_device_protocol_training_beats_feature_matching_alone(digits) -> None:
    """The student trained with the device protocol's loss does better under that protocol than
    the same student trained by feature distillation alone."""
    family, teacher = digits
    protocol = protocol_of("digits")
    es = evaluate.eval_set(family, teacher, protocol, n_tasks=100)
    inputs = family_inputs(family, teacher, "train", 2048, 0)
    pupil = distill.student(teacher, 0.5, seed=0)
    assert pupil.num_weights < 0.5 * teacher.num_weights
    hint_only = distill.distill(teacher, pupil, inputs, steps=150)
    with_task = distill.distill(teacher, pupil, inputs, steps=150, family=family, protocol=protocol)
    assert evaluate.score_float(with_task, es) > evaluate.score_float(hint_only, es) + 0.02
    assert evaluate.score_float(with_task, es) > evaluate.score_float(pupil, es) + 0.02


def test_masks_survive_fine_tuning(digits) -> None:
    family, graph = digits
    pruned, masks = prune.unstructured(graph, 0.5)
    inputs = family_inputs(family, graph, "train", 512, 0)
    tuned = distill.distill(graph, pruned, inputs, steps=20, masks=masks)
    for la, mask in zip(tuned.layers, masks, strict=True):
        if mask is not None:
            assert np.all(la.weight[~mask] == 0) and np.any(la.weight[mask] != 0)


def test_compression_spec_errors() -> None:
    with pytest.raises(ConfigError, match=r"structured:0\.5"):
        parse("structured")
    with pytest.raises(ConfigError, match="unknown compression"):
        parse("quantum:0.5")
    with pytest.raises(ConfigError, match=r"only '\+int4'"):
        parse("distill:0.5+int2")
    with pytest.raises(ConfigError, match="sparsity"):
        parse("unstructured:1.5")
    with pytest.raises(ConfigError, match="width fraction"):
        parse("distill:0")
    with pytest.raises(ConfigError, match="training step"):
        parse("distill:0.5", steps=0)
    with pytest.raises(ConfigError, match="task family and its protocol"):
        family = get_family("sine")
        g = from_params("mlp-sine", get_model("mlp-sine").init(0), "regression")
        distill.distill(g, g, family_inputs(family, g, "train", 8, 0), steps=1, family=family)
    assert parse("distill:0.5+int4").spec == "distill:0.5+int4"
    assert parse("int4").weight_bits == 4


@pytest.mark.parametrize(
    "spec", ["unstructured:0.5", "structured:0.5", "distill:0.5", "int4", "structured:0.7+int4"]
)
def test_compression_specs_shrink_the_model(digits, spec: str) -> None:
    family, graph = digits
    torch.manual_seed(0)
    small = parse(spec, steps=3).apply(graph, family, protocol_of("digits"))
    assert small.layers[-1].weight.shape[0] == graph.layers[-1].weight.shape[0]
    bits = int(small.meta.get("weight_bits", 8))
    assert bits == (4 if "int4" in spec else 8)
    body_bits = sum(
        bits * np.count_nonzero(la.weight) for la in small.layers[:-1] if la.weight is not None
    )
    full_bits = 8 * sum(la.weight.size for la in graph.layers[:-1] if la.weight is not None)
    assert body_bits <= 0.6 * full_bits
