"""Architectures: specs, deterministic init and MCU budgets."""

from __future__ import annotations

import pytest
import torch

from chainml.errors import BudgetError, MetaLearningError
from chainml.meta.models import ARCHITECTURES, MCU_FLASH_BYTES, MCU_RAM_BYTES, get_model, model_spec


@pytest.mark.parametrize("arch_id", sorted(ARCHITECTURES))
def test_spec_matches_the_module_and_fits_a_cortex_m4(arch_id: str) -> None:
    model = get_model(arch_id)
    spec = model.spec
    named = dict(model.module.named_parameters())
    assert spec.names == tuple(named)
    assert spec.num_params == sum(p.numel() for p in named.values())
    assert spec.head == ("head.weight", "head.bias")
    assert spec.body_size == spec.num_params - sum(named[h].numel() for h in spec.head)
    assert spec.num_params < spec.flash_bytes_int8 < 2 * spec.num_params
    assert 0 < spec.ram_inference_bytes < spec.ram_adapt_bytes(1) < spec.ram_adapt_bytes(10)
    # Spiking models carry their plasticity rule (about twice their synapses) and their devices
    # adapt by the rule, so the batch-10 backprop estimate is not theirs; one sample must fit.
    spec.check_budget(MCU_RAM_BYTES, MCU_FLASH_BYTES, batch=1 if arch_id.startswith("snn-") else 10)


def test_sine_mlp_is_the_maml_network() -> None:
    spec = model_spec("mlp-sine")
    assert [p.shape for p in spec.params] == [(40, 1), (40,), (40, 40), (40,), (1, 40), (1,)]
    assert spec.num_params == 1761


def test_budget_violations_raise_budget_error() -> None:
    spec = model_spec("mlp-digits")
    with pytest.raises(BudgetError, match="flash"):
        spec.check_budget(flash_bytes=1000)
    with pytest.raises(BudgetError, match="adaptation RAM"):
        spec.check_budget(ram_bytes=spec.ram_inference_bytes, batch=1)


def test_init_is_seeded_and_independent_of_global_state() -> None:
    model = get_model("cnn-vibration")
    torch.manual_seed(123)
    a = model.init(5)
    torch.manual_seed(456)
    b = model.init(5)
    c = model.init(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["body.0.weight"], c["body.0.weight"])
    model.spec.validate(a)


def test_validate_rejects_wrong_shapes_names_and_dtypes() -> None:
    model = get_model("mlp-sine")
    p = model.init(0)
    with pytest.raises(MetaLearningError):
        model.spec.validate({**p, "head.bias": torch.zeros(2)})
    with pytest.raises(MetaLearningError):
        model.spec.validate({**p, "head.bias": p["head.bias"].double()})
    with pytest.raises(MetaLearningError):
        model.spec.validate({k: v for k, v in p.items() if k != "head.bias"})
    with pytest.raises(MetaLearningError, match="unknown architecture"):
        get_model("resnet50")
