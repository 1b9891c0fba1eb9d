"""The Foundry suite (foundry/test): fuzz tests and stateful invariants at 10,000 runs each.

Runs the real ``forge`` (npm @foundry-rs/forge-linux-amd64) offline through the project's
solc-js adapter, as ``../shared/NOTES.md`` describes, and fails on any failing test.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from chainml.paths import PROJECT_ROOT
from chainml.toolchain import use_project_solc

FORGE = PROJECT_ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"


@pytest.mark.slow
def test_foundry_suite_passes_with_ten_thousand_invariant_runs() -> None:
    if not FORGE.exists():
        pytest.fail(f"forge is missing at {FORGE}: run `make setup`")
    proc = subprocess.run(
        [str(FORGE), "test", "--offline", "--use", str(use_project_solc())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1_800,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4_000:]
    invariant_runs = [int(n) for n in re.findall(r"invariant_\w+\(\) \(runs: (\d+)", out)]
    assert len(invariant_runs) >= 3 and min(invariant_runs) >= 10_000, out[-4_000:]
    assert "testFuzz_" in out and "[FAIL" not in out
