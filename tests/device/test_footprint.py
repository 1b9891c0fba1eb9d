"""Budget checks use the measured Cortex-M4 footprints, and those figures are current."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from chainml.device import footprint as fp_module
from chainml.device.cost import check_fits
from chainml.device.footprint import FOOTPRINTS_FILE, footprint, measured_footprint
from chainml.device.profile import get_profile
from chainml.errors import BudgetError
from chainml.mcu.footprints import measure_arch
from chainml.meta.models import model_spec

MEASURED = sorted(json.loads(FOOTPRINTS_FILE.read_text())["architectures"])


def test_every_deployable_architecture_is_measured() -> None:
    from tests.mcu.test_graph import deployable_archs

    assert set(MEASURED) == set(deployable_archs())
    assert {"mlp-sine", "mlp-meter", "cnn-vibration", "mlp-coldchain", "mlp-digits"} <= set(
        MEASURED
    )


@pytest.mark.parametrize("arch_id", MEASURED)
def test_committed_footprints_match_a_fresh_build(arch_id: str, tmp_path: Path) -> None:
    fresh = measure_arch(arch_id, tmp_path)
    assert fresh is not None
    committed = json.loads(FOOTPRINTS_FILE.read_text())["architectures"][arch_id]
    keys = ("flash_bytes", "ram_bytes", "refit_flash_bytes", "refit_ram_bytes")
    assert [fresh[k] for k in keys] == [committed[k] for k in keys], (
        "footprints.json is stale: run `python -m chainml.mcu.footprints`"
    )


def test_measured_figures_replace_the_estimates() -> None:
    fp = footprint("mlp-digits")
    spec = model_spec("mlp-digits")
    assert fp.source == "measured"
    # The firmware is more than the weights (code, multipliers, shifts), and its inference RAM
    # includes the stack, which the formula ignores.
    assert fp.flash_bytes > spec.flash_bytes_int8
    assert fp.ram_inference_bytes > spec.ram_inference_bytes


def test_an_unmeasured_architecture_falls_back_to_the_estimate(tmp_path: Path) -> None:
    empty = tmp_path / "none.json"
    assert measured_footprint("mlp-digits", empty) is None
    fp = footprint("mlp-digits", empty)
    assert fp.source == "estimate" and fp.flash_bytes == model_spec("mlp-digits").flash_bytes_int8


def test_check_fits_refuses_on_the_measured_flash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device whose flash holds the estimate but not the measured firmware must refuse:
    the measured figure, not the formula, decides."""
    spec = model_spec("mlp-digits")
    measured = footprint("mlp-digits").flash_bytes
    assert spec.flash_bytes_int8 < measured
    tight = replace(
        get_profile("nrf52840-ble"), flash_bytes=(spec.flash_bytes_int8 + measured) // 2
    )
    with pytest.raises(BudgetError, match=r"flash \(measured\)"):
        check_fits(tight, "mlp-digits")
    # Under the estimate alone the same device would have accepted.
    monkeypatch.setattr(fp_module, "FOOTPRINTS_FILE", Path("/nonexistent/footprints.json"))
    monkeypatch.setattr(
        "chainml.device.cost.footprint",
        lambda arch_id: fp_module.footprint(arch_id, Path("/nonexistent/footprints.json")),
    )
    check_fits(tight, "mlp-digits")


def test_check_fits_refuses_when_the_head_refit_does_not_fit_in_flash() -> None:
    """The device protocol's on-device step is part of the firmware: a device whose flash holds
    inference alone but not inference plus the measured ridge re-fit must refuse."""
    fp = footprint("mlp-digits")
    assert fp.refit_flash_bytes is not None and fp.refit_ram_bytes is not None
    assert fp.flash_bytes < fp.refit_flash_bytes and fp.ram_inference_bytes < fp.refit_ram_bytes
    tight = replace(
        get_profile("nrf52840-ble"), flash_bytes=(fp.flash_bytes + fp.refit_flash_bytes) // 2
    )
    with pytest.raises(BudgetError, match=r"flash with the head re-fit \(measured\)"):
        check_fits(tight, "mlp-digits")
    check_fits(replace(tight, flash_bytes=fp.refit_flash_bytes), "mlp-digits")


def test_check_fits_still_refuses_adaptation_ram_beyond_the_device() -> None:
    small = get_profile("nrf52805-ble")
    with pytest.raises(BudgetError, match=r"nrf52805-ble refuses.*adaptation RAM"):
        check_fits(small, "mlp-digits")
    check_fits(get_profile("nrf52840-ble"), "mlp-digits")
