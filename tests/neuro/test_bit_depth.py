"""Hardware in the loop: 4-bit chips need noise-injected meta-training."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chainml.meta.tasks import TaskFamily
from chainml.neuro.chip import FLOAT, ChipConfig
from chainml.neuro.evaluate import evaluate_plastic
from chainml.neuro.metatrain import LifetimeSampling, MetaTrainConfig, meta_train
from chainml.neuro.plasticity import PlasticSNN

CHIP = ChipConfig(bits=4, synaptic_sigma=0.05, membrane_sigma=0.05)


@pytest.mark.slow
def test_noise_injected_meta_training_beats_float_training_on_a_4_bit_chip(
    net: PlasticSNN, gas: TaskFamily, trained: dict, sampling: LifetimeSampling
) -> None:
    """Both continue from the same float meta-training for the same iterations; only the chip
    in the loop differs. The float-trained model also loses accuracy when quantized."""
    base = MetaTrainConfig(iterations=80, sampling=replace(sampling, seed=1), meta_lr=1e-3)
    on_chip = meta_train(net, gas, replace(base, chip=CHIP), init=trained).params
    in_float = meta_train(net, gas, replace(base, chip=FLOAT), init=trained).params

    def loss(params: dict, chip: ChipConfig) -> float:
        return evaluate_plastic(net, params, gas, chip=chip, n_tasks=100).loss_mean

    float_on_chip = loss(in_float, CHIP)
    assert loss(on_chip, CHIP) < 0.9 * float_on_chip
    assert float_on_chip > 1.2 * loss(in_float, FLOAT)
