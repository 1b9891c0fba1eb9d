"""Shared fixtures for the meta-learning engine tests."""

from __future__ import annotations

import pytest
import torch

from chainml.meta.adapt import AdaptConfig
from chainml.meta.maml import MAMLConfig, train_maml
from chainml.meta.models import Model, get_model
from chainml.meta.tasks import FAMILIES, TaskFamily, get_family
from chainml.meta.training import TaskSampling


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """Tiny models: one intra-op thread is faster and keeps results stable."""
    torch.set_num_threads(1)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> TaskFamily:
    """Every registered task family in turn."""
    return get_family(request.param)


@pytest.fixture
def sine() -> TaskFamily:
    return get_family("sine")


@pytest.fixture
def sine_model() -> Model:
    return get_model("mlp-sine")


@pytest.fixture(scope="session")
def sine_meta_params() -> dict[str, torch.Tensor]:
    """A briefly MAML-trained sine initialisation (shared: training takes a few seconds)."""
    cfg = MAMLConfig(
        iterations=1000,
        adapt=AdaptConfig(steps=1, inner_lr=0.01),
        sampling=TaskSampling(meta_batch=10, shots=10, queries=10),
    )
    return train_maml(get_family("sine"), "mlp-sine", cfg).params
