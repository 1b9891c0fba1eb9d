"""Shared fixtures for the neuromorphic tests: one briefly meta-trained plastic SNN."""

from __future__ import annotations

import pytest
import torch

from chainml.meta.tasks import TaskFamily, get_family
from chainml.neuro.metatrain import LifetimeSampling, MetaTrainConfig, meta_train
from chainml.neuro.plasticity import PlasticSNN

TRAIN_ITERATIONS = 150


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def gas() -> TaskFamily:
    return get_family("gasdrift")


@pytest.fixture(scope="session")
def net() -> PlasticSNN:
    return PlasticSNN("snn-gasdrift")


@pytest.fixture(scope="session")
def sampling() -> LifetimeSampling:
    return LifetimeSampling(meta_batch=8, shots=10, queries=20)


@pytest.fixture(scope="session")
def trained(net: PlasticSNN, gas: TaskFamily, sampling: LifetimeSampling) -> dict:
    """Weights and plasticity rule after a short float meta-training (a few seconds)."""
    cfg = MetaTrainConfig(iterations=TRAIN_ITERATIONS, sampling=sampling)
    return meta_train(net, gas, cfg).params
