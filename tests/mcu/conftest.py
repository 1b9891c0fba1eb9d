"""MCU fixtures: one int8 model per task family (seeded init weights, calibrated on the
family's training inputs) and >= 1,000 test vectors: realistic held-out inputs plus random
int8 corners. Built once per session; the toolchain fixtures skip nothing on a machine set up
by ``make setup`` and fail loudly otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from chainml.mcu.export import Deployment, deploy, deployable_arch, family_inputs, test_vectors
from chainml.mcu.graph import Graph, from_params
from chainml.mcu.qemu import build_plugin
from chainml.meta.models import get_model
from chainml.meta.tasks import FAMILIES, get_family

FAMILY_NAMES = [name for name in FAMILIES if deployable_arch(get_family(name)) is not None]
"""Every registered family with an MCU-deployable architecture (its default, or its MLP
variant beside a spiking default)."""


@dataclass
class FamilyCase:
    name: str
    graph: Graph
    deployment: Deployment
    vectors: np.ndarray


@pytest.fixture(scope="session")
def mcu_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcu")


@pytest.fixture(scope="session")
def plugin(mcu_dir: Path) -> Path:
    return build_plugin(mcu_dir / "plugin")


@pytest.fixture(scope="session", params=FAMILY_NAMES)
def case(request: pytest.FixtureRequest, mcu_dir: Path) -> FamilyCase:
    name = request.param
    family = get_family(name)
    arch_id = deployable_arch(family)
    assert arch_id is not None
    graph = from_params(arch_id, get_model(arch_id).init(3), family.kind)
    dep = deploy(graph, family_inputs(family, graph, "train", 256, 5), mcu_dir / name)
    realistic = family_inputs(family, graph, "eval", 1000, 6)
    return FamilyCase(name, graph, dep, test_vectors(dep.model, realistic, 64, 7))


@pytest.fixture(autouse=True)
def one_torch_thread() -> object:
    """Small models train fastest single-threaded on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
