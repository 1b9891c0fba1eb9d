"""Bit depth with stochastic rounding, noise injection and the chip state."""

from __future__ import annotations

import pytest
import torch

from chainml.errors import MetaLearningError
from chainml.meta.models import get_model
from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import FLOAT, ChipConfig, ChipState
from chainml.neuro.noise import membrane_noise, synaptic_noise
from chainml.neuro.plasticity import PlasticSNN
from chainml.neuro.quant import qmax, quantize_fixed


def test_codes_lie_on_the_grid_and_saturate_at_the_range() -> None:
    x = torch.linspace(-3, 3, 101)
    q = quantize_fixed(x, 4, 2.0, None)
    step = 2.0 / qmax(4)
    assert qmax(4) == 7 and qmax(8) == 127
    assert torch.allclose(q / step, torch.round(q / step), atol=1e-5)
    assert q.max() == pytest.approx(2.0) and q.min() == pytest.approx(-2.0)
    assert (q - x.clamp(-2, 2)).abs().max() <= step / 2 + 1e-6


def test_gradient_is_straight_through_inside_and_zero_when_saturated() -> None:
    x = torch.tensor([0.33, 1.1, 5.0, -7.0], requires_grad=True)
    u = torch.rand(4, generator=torch.Generator().manual_seed(0))
    quantize_fixed(x, 4, 2.0, u).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_stochastic_rounding_keeps_updates_that_nearest_rounding_loses() -> None:
    """1000 increments of a tenth of a step: nearest rounding never moves, stochastic rounding
    accumulates about 100 steps (it is unbiased)."""
    step = 1.0 / qmax(8)
    gen = torch.Generator().manual_seed(1)
    nearest = torch.zeros(200)
    stochastic = torch.zeros(200)
    for _ in range(1000):
        nearest = quantize_fixed(nearest + 0.1 * step, 8, 1.0, None)
        u = torch.rand(200, generator=gen)
        stochastic = quantize_fixed(stochastic + 0.1 * step, 8, 1.0, u)
    assert torch.all(nearest == 0)
    assert stochastic.mean() / step == pytest.approx(100.0, rel=0.05)


def test_bad_bit_depths_and_noise_levels_are_refused() -> None:
    with pytest.raises(MetaLearningError, match="bit depth"):
        ChipConfig(bits=9)
    with pytest.raises(MetaLearningError, match="invalid chip config"):
        ChipConfig(synaptic_sigma=-0.1)


def test_noise_is_off_at_zero_and_scaled_otherwise() -> None:
    w = torch.ones(10_000)
    n = torch.randn(10_000, generator=torch.Generator().manual_seed(2))
    assert torch.equal(synaptic_noise(w, 0.0, n), w) and torch.equal(
        membrane_noise(w, 0.1, None), w
    )
    assert synaptic_noise(w, 0.1, n).std() == pytest.approx(0.1, rel=0.05)
    assert (membrane_noise(w, 0.2, n) - w).std() == pytest.approx(0.2, rel=0.05)


def test_float_chip_equals_the_registered_model_and_noise_is_seeded(
    net: PlasticSNN, gas: TaskFamily
) -> None:
    """The on-chip simulation with no plasticity and an ideal chip computes exactly what
    ``get_model('snn-gasdrift')`` computes: one LIF implementation, two wrappers."""
    params = net.init(0)
    x = gas.episodes(0, range(3), "eval", 4, 4).x_query  # (K, N, T, C)
    model = get_model("snn-gasdrift")
    expected = torch.stack([model(params, xi) for xi in x])
    fwd = net.forward(params, net.zero_traces(params, 3), x, ChipState(FLOAT, 0))
    assert torch.allclose(fwd.out, expected, atol=1e-5)
    noisy = ChipConfig(bits=4, synaptic_sigma=0.05, membrane_sigma=0.05)
    zero = net.zero_traces(params, 3)
    a = net.forward(params, zero, x, ChipState(noisy, 7)).out
    b = net.forward(params, zero, x, ChipState(noisy, 7)).out
    c = net.forward(params, zero, x, ChipState(noisy, 8)).out
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, expected, atol=1e-3)


def test_per_task_chip_seeds_make_a_device_independent_of_its_batch(
    net: PlasticSNN, gas: TaskFamily
) -> None:
    """The swarm seeds each device's chip draws on its own: in a batch or alone, a device
    sees the same noise and rounding."""
    params = net.init(0)
    x = gas.episodes(0, range(3), "eval", 4, 4).x_query
    noisy = ChipConfig(bits=8, synaptic_sigma=0.05, membrane_sigma=0.05)
    batch = net.forward(params, net.zero_traces(params, 3), x, ChipState(noisy, [11, 12, 13]))
    alone = net.forward(params, net.zero_traces(params, 1), x[1:2], ChipState(noisy, [12]))
    assert torch.allclose(batch.out[1], alone.out[0], atol=1e-5)
    other = net.forward(params, net.zero_traces(params, 1), x[1:2], ChipState(noisy, [14]))
    assert not torch.allclose(other.out[0], alone.out[0], atol=1e-3)
    with pytest.raises(MetaLearningError, match="2 chip seeds for 3 tasks"):
        net.forward(params, net.zero_traces(params, 3), x, ChipState(noisy, [1, 2]))
