"""Measure every deployable architecture's firmware and write ``chainml/device/footprints.json``.

``python -m chainml.mcu.footprints`` builds each registered architecture (seeded init weights;
the generated code's size does not depend on the weights' values) with arm-none-eabi-gcc and
records the firmware ELF's flash and inference RAM, and the flash and RAM of the ELF that adds
the on-device ridge head re-fit, which the device budget checks then use.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chainml.device.footprint import FOOTPRINTS_FILE
from chainml.errors import ConfigError
from chainml.mcu.export import deploy
from chainml.mcu.graph import from_params
from chainml.meta.models import ARCHITECTURES, get_model


def measure_arch(arch_id: str, work: Path) -> dict[str, Any] | None:
    """Footprint of ``arch_id``'s firmware, or None if it has no int8 MCU kernels."""
    model = get_model(arch_id)
    kind = "regression" if model.spec.loss == "mse" else "classification"
    try:
        graph = from_params(arch_id, model.init(0), kind)
    except ConfigError:
        return None
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=(64, *graph.input_shape)).astype(np.float32)
    dep = deploy(graph, calibration, work / arch_id)
    refit = dep.build.adapt_footprint
    return {
        **dep.footprint.as_dict(),
        "refit_flash_bytes": refit.flash_bytes,
        "refit_ram_bytes": refit.ram_bytes,
        "toolchain": dep.build.gcc_version,
    }


def measure_all() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chainml-footprints-") as tmp:
        archs = {}
        for arch_id in sorted(ARCHITECTURES):
            entry = measure_arch(arch_id, Path(tmp))
            if entry is not None:
                archs[arch_id] = entry
    return {
        "format": "chainml.mcu-footprints.v1",
        "target": "cortex-m4 (arm-none-eabi-gcc -O2 -mthumb, int8, no libc)",
        "architectures": archs,
    }


def main() -> int:
    data = measure_all()
    FOOTPRINTS_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"wrote {FOOTPRINTS_FILE} ({len(data['architectures'])} architectures)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
