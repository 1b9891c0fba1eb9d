"""int8 quantization: error bounds, determinism and the numpy/torch agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainml.errors import MetaLearningError
from chainml.meta.models import get_model
from chainml.meta.quant import (
    dequantize_params,
    dequantize_tensor,
    fake_quant,
    fake_quant_params,
    quantize_array,
    quantize_params,
    quantize_tensor,
)


@pytest.mark.parametrize("per_channel", [False, True])
def test_error_is_at_most_half_a_step(per_channel: bool) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((16, 8, 5)) * rng.uniform(0.01, 10, (16, 1, 1))).astype(np.float32)
    q = quantize_tensor(x, per_channel)
    err = np.abs(dequantize_tensor(q) - x)
    scale = q.scales.reshape(-1, 1, 1) if per_channel else q.scales[0]
    assert q.values.dtype == np.int8 and q.values.min() >= -127
    assert np.all(err <= scale / 2 * (1 + 1e-6))
    assert np.abs(q.values).max() == 127
    assert q.scales.shape == ((16,) if per_channel else (1,))


def test_per_channel_beats_per_tensor_on_uneven_channels() -> None:
    x = np.stack([np.linspace(-1, 1, 50), np.linspace(-100, 100, 50)]).astype(np.float32)
    err = lambda pc: np.abs(dequantize_tensor(quantize_tensor(x, pc)) - x)[0].max()  # noqa: E731
    assert err(True) < err(False) / 50


def test_rounding_is_half_to_even_and_zero_is_exact() -> None:
    assert quantize_array(
        np.array([0.5, 1.5, 2.5, -0.5, -2.5], np.float32), np.float32(1)
    ).tolist() == [0, 2, 2, 0, -2]
    z = quantize_tensor(np.zeros((3, 4), np.float32), per_channel=True)
    assert np.all(z.values == 0) and np.all(z.scales == 1.0)
    assert np.all(dequantize_tensor(z) == 0)


def test_nan_is_rejected() -> None:
    with pytest.raises(MetaLearningError):
        quantize_tensor(np.array([1.0, np.nan], np.float32))


@pytest.mark.parametrize("per_channel", [False, True])
def test_torch_fake_quant_is_bit_identical_to_numpy(per_channel: bool) -> None:
    params = get_model("cnn-vibration").init(0)
    faked = fake_quant_params(params, per_channel)
    real = dequantize_params(quantize_params(params, per_channel))
    for k in params:
        assert torch.equal(faked[k], real[k]), k


def test_fake_quant_is_idempotent() -> None:
    t = torch.randn(20, 7, generator=torch.Generator().manual_seed(1))
    once = fake_quant(t)
    assert torch.equal(fake_quant(once), once)
