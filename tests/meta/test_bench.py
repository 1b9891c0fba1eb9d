"""bench/meta.py runs end to end and ends with one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chainml.paths import PROJECT_ROOT


@pytest.mark.slow
def test_quick_bench_prints_tables_then_json() -> None:
    out = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "meta.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    lines = out.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["mode"] == "quick" and "sine_maml_mse_10" in summary["checks"]
    assert "federated_compression" in summary["checks"]
    assert summary["checks"]["federated_compression"]["pass"] is True
    assert "== Sine 5-shot MSE" in out.stdout
    for name in ("meter", "vibration", "coldchain", "digits"):
        assert f"{name}_meta_beats_baselines_10" in summary["checks"]
