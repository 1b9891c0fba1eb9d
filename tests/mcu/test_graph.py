"""The MCU float graph computes exactly what the chainml model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainml.errors import ConfigError
from chainml.mcu.graph import forward, from_params, to_channels_last
from chainml.meta.models import ARCHITECTURES, get_model


def deployable_archs() -> list[str]:
    out = []
    for arch_id in ARCHITECTURES:
        model = get_model(arch_id)
        kind = "regression" if model.spec.loss == "mse" else "classification"
        try:
            from_params(arch_id, model.init(0), kind)
        except ConfigError:
            continue
        out.append(arch_id)
    return out


@pytest.mark.parametrize("arch_id", deployable_archs())
def test_graph_forward_equals_the_model(arch_id: str) -> None:
    model = get_model(arch_id)
    params = model.init(4)
    kind = "regression" if model.spec.loss == "mse" else "classification"
    graph = from_params(arch_id, params, kind)
    x = torch.randn(16, *model.arch.input_shape, generator=torch.Generator().manual_seed(0))
    ours = forward(graph.layers, torch.from_numpy(to_channels_last(graph, x)))
    np.testing.assert_allclose(ours.numpy(), model(params, x).numpy(), rtol=1e-5, atol=1e-6)
    assert graph.shapes()[-1] == (model.spec.output_dim,)


def test_every_original_architecture_deploys() -> None:
    expected = {"mlp-sine", "mlp-meter", "cnn-vibration", "mlp-coldchain", "mlp-digits"}
    assert expected <= set(deployable_archs())


def test_layers_without_an_int8_kernel_are_refused_clearly() -> None:
    """Architectures with other layers (e.g. spiking ones) get a ConfigError naming the layer."""
    for arch_id in set(ARCHITECTURES) - set(deployable_archs()):
        model = get_model(arch_id)
        with pytest.raises(ConfigError, match=f"{arch_id}: .*(MCU kernel|Flatten|Conv1d)"):
            from_params(arch_id, model.init(0), "regression")
