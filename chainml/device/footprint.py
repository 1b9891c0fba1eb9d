"""Measured MCU footprints: flash and inference RAM of a real Cortex-M4 build, per architecture.

``footprints.json`` beside this module holds what ``arm-none-eabi-size`` and gcc's stack usage
report for the int8 firmware that ``chainml export`` builds (``python -m
chainml.mcu.footprints`` regenerates it; a test rebuilds and compares). The generated code
keeps every weight-dependent number in flash arrays, so these figures depend on the
architecture only. Budget checks use them in place of the formula estimates of
``ModelSpec`` whenever an architecture has been measured. The device protocol's on-device step
(the ridge head re-fit, built into the ``adapt`` ELF beside inference) is measured the same way;
gradient-adaptation RAM (float32 training state) stays an estimate, since the int8 firmware
does not train.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from chainml.meta.models import model_spec

FOOTPRINTS_FILE = Path(__file__).with_name("footprints.json")
Source = Literal["measured", "estimate"]


@dataclass(frozen=True)
class Footprint:
    """Flash and inference RAM (bytes) of one architecture, and where the figures come from."""

    arch_id: str
    flash_bytes: int
    ram_inference_bytes: int
    source: Source
    detail: str = ""
    refit_flash_bytes: int | None = None
    """Inference plus the on-device ridge head re-fit (measured only)."""
    refit_ram_bytes: int | None = None


@cache
def _measured(path: Path = FOOTPRINTS_FILE) -> dict[str, dict]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return dict(data.get("architectures", {}))


def measured_footprint(arch_id: str, path: Path = FOOTPRINTS_FILE) -> Footprint | None:
    """The measured figures of ``arch_id``, or None if it was never built."""
    entry = _measured(path).get(arch_id)
    if entry is None:
        return None
    return Footprint(
        arch_id,
        int(entry["flash_bytes"]),
        int(entry["ram_bytes"]),
        "measured",
        str(entry.get("toolchain", "")),
        int(entry["refit_flash_bytes"]) if "refit_flash_bytes" in entry else None,
        int(entry["refit_ram_bytes"]) if "refit_ram_bytes" in entry else None,
    )


def footprint(arch_id: str, path: Path = FOOTPRINTS_FILE) -> Footprint:
    """Measured figures when available, else the ``ModelSpec`` estimates."""
    found = measured_footprint(arch_id, path)
    if found is not None:
        return found
    spec = model_spec(arch_id)
    return Footprint(arch_id, spec.flash_bytes_int8, spec.ram_inference_bytes, "estimate")
