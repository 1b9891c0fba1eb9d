"""TFLM's integer arithmetic, checked against exact rational definitions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from chainml.mcu.int8 import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)


def round_half_away(q: Fraction) -> int:
    n = abs(q)
    whole = n.numerator // n.denominator
    if n - whole >= Fraction(1, 2):
        whole += 1
    return whole if q >= 0 else -whole


@pytest.mark.parametrize("real", [1e-9, 0.0003, 0.25, 0.5, 0.75, 0.999999999, 1.0, 3.7, 1234.5])
def test_quantize_multiplier_represents_the_real_number(real: float) -> None:
    m, shift = quantize_multiplier(real)
    assert 2**30 <= m < 2**31
    approx = Fraction(m) * Fraction(2) ** (shift - 31)
    assert abs(approx - Fraction(real)) <= Fraction(real) * Fraction(1, 2**30)


def test_quantize_multiplier_edge_cases() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1e-12) == (0, 0)  # shift below -31: TFLM flushes to zero
    # 1 - 2^-40 rounds up to 2^31, which must renormalise to 2^30 with shift + 1.
    assert quantize_multiplier(1 - 2**-40) == (2**30, 1)


def test_high_mul_and_divide_match_exact_rounding() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(INT32_MIN, INT32_MAX, 4000, endpoint=True)
    b = rng.integers(2**30, 2**31, 4000)
    got = saturating_rounding_doubling_high_mul(a, b)
    for x, y, g in zip(a[:500], b[:500], got[:500], strict=True):
        # (2ab / 2^32) rounded half away from zero == (ab + nudge) / 2^31 truncated.
        assert g == round_half_away(Fraction(int(x) * int(y), 2**31))
    assert (
        saturating_rounding_doubling_high_mul(np.array([INT32_MIN]), np.array([INT32_MIN]))[0]
        == INT32_MAX
    )
    exps = rng.integers(0, 32, 4000)
    div = rounding_divide_by_pot(a, exps)
    for x, e, d in zip(a[:500], exps[:500], div[:500], strict=True):
        assert d == round_half_away(Fraction(int(x), 2 ** int(e)))


def test_double_rounding_differs_from_single_rounding() -> None:
    """The rounding mode matters: a single-rounding reference would be off by one LSB."""
    rng = np.random.default_rng(1)
    acc = rng.integers(-(2**20), 2**20, 20000)
    m, shift = quantize_multiplier(0.0123)
    double = multiply_by_quantized_multiplier(acc, np.int64(m), np.int64(shift))
    total = 31 - shift
    single = (acc * m + (1 << (total - 1))) >> total  # TFLITE_SINGLE_ROUNDING
    diff = np.abs(double - single)
    assert diff.max() == 1 and (diff > 0).sum() > 0
