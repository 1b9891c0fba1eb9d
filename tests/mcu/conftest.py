"""MCU fixtures: one int8 model per task family (seeded init weights, calibrated on the
family's training inputs) and >= 1,000 test vectors: realistic held-out inputs plus random
int8 corners. Built once per session; the toolchain fixtures skip nothing on a machine set up
by ``make setup`` and fail loudly otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from chainml.errors import ConfigError
from chainml.mcu.export import Deployment, deploy, family_inputs, test_vectors
from chainml.mcu.graph import Graph, from_params
from chainml.mcu.qemu import build_plugin
from chainml.meta.models import get_model
from chainml.meta.tasks import FAMILIES, get_family


def deployable_families() -> list[str]:
    """Every registered family whose default architecture has int8 MCU kernels."""
    out = []
    for name in FAMILIES:
        family = get_family(name)
        model = get_model(family.default_arch)
        try:
            from_params(family.default_arch, model.init(0), family.kind)
        except ConfigError:
            continue
        out.append(name)
    return out


FAMILY_NAMES = deployable_families()


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
    model = get_model(family.default_arch)
    graph = from_params(family.default_arch, model.init(3), family.kind)
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
