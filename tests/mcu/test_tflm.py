"""The Python int8 reference against the real TFLite Micro interpreter, every task family."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chainml.mcu import int8
from chainml.mcu.int8 import run
from chainml.mcu.tflite import tflm_run, to_tflite
from chainml.meta.tasks import FAMILIES
from tests.mcu.conftest import FAMILY_NAMES, FamilyCase


def test_every_family_is_covered() -> None:
    assert set(FAMILY_NAMES) == set(FAMILIES)
    assert {"sine", "meter", "vibration", "coldchain", "digits", "gasdrift"} <= set(FAMILIES)


def test_reference_matches_tflm_bit_for_bit(case: FamilyCase) -> None:
    x = case.vectors
    assert len(x) >= 1000
    ref = run(case.deployment.model, x)
    out = tflm_run(case.deployment.tflite, x)
    assert out.dtype == np.int8 and out.shape == ref.shape
    np.testing.assert_array_equal(ref, out)
    # Not trivially equal: the outputs spread over many int8 codes and are not all clamped.
    assert len(np.unique(ref)) >= 20
    assert (np.abs(ref.astype(int)) < 127).mean() > 0.5


def test_a_reference_one_percent_off_in_one_multiplier_disagrees(case: FamilyCase) -> None:
    """The comparison can fail: TFLM derives its multipliers from the flatbuffer's scales, so a
    reference whose first-layer multipliers are 1% off no longer matches it."""
    model = case.deployment.model
    first = model.layers[0]
    assert first.multiplier is not None
    bumped = (first.multiplier.astype(np.int64) * 101 // 100).astype(np.int32)
    other = replace(model, layers=(replace(first, multiplier=bumped), *model.layers[1:]))
    tflm = tflm_run(case.deployment.tflite, case.vectors)
    assert np.array_equal(run(model, case.vectors), tflm)
    assert not np.array_equal(run(other, case.vectors), tflm)


def test_flatbuffer_round_trips_through_the_schema(case: FamilyCase) -> None:
    from tflite_micro.python.tflite_micro.runtime import convert_bytearray_to_object

    model = convert_bytearray_to_object(bytearray(case.deployment.tflite))
    ops = model.subgraphs[0].operators
    assert len(ops) == len(case.deployment.model.layers)
    assert bytes(case.deployment.tflite[4:8]) == b"TFL3"
    assert to_tflite(case.deployment.model) == case.deployment.tflite  # deterministic


def test_tflm_uses_double_rounding_not_single_rounding(
    case: FamilyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference's rounding mode is the interpreter's: swapped for TFLITE_SINGLE_ROUNDING's
    ``(x * M + 2^(30 - shift)) >> (31 - shift)``, it disagrees with TFLM on some vectors."""

    def single(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
        total = 31 - np.asarray(shift, dtype=np.int64)
        prod = acc.astype(np.int64) * np.asarray(multiplier, dtype=np.int64)
        return (prod + (np.int64(1) << (total - 1))) >> total

    tflm = tflm_run(case.deployment.tflite, case.vectors)
    monkeypatch.setattr(int8, "multiply_by_quantized_multiplier", single)
    mismatched = (run(case.deployment.model, case.vectors) != tflm).any(axis=1).sum()
    assert mismatched > 0
