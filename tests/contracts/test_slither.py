"""Slither on contracts/ through the solc-js adapter: no high or medium finding unexplained.

Runs Slither (PyPI slither-analyzer) in standard-JSON mode as ``../shared/NOTES.md``
describes, from a scratch copy of contracts/ (crytic-compile would otherwise see
foundry.toml and insist on running forge itself), and checks every high/medium finding
against the triage file ``contracts/slither-triage.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chainml.paths import PROJECT_ROOT, node_modules
from chainml.toolchain import use_project_solc

TRIAGE = PROJECT_ROOT / "contracts" / "slither-triage.json"


def _key(finding: dict) -> str:
    element = finding["elements"][0]
    parent = element.get("type_specific_fields", {}).get("parent", {}).get("name", "")
    return f"{finding['check']}:{parent}.{element['name']}"


@pytest.mark.slow
def test_slither_has_no_unexplained_high_or_medium_finding(tmp_path: Path) -> None:
    slither = Path(sys.executable).with_name("slither")
    shutil.copytree(PROJECT_ROOT / "contracts", tmp_path / "contracts")
    (tmp_path / "node_modules").symlink_to(node_modules())
    report = tmp_path / "slither.json"
    proc = subprocess.run(
        [
            str(slither), "contracts", "--solc-standard-json", "--solc", str(use_project_solc()),
            "--solc-remaps", "@openzeppelin=node_modules/@openzeppelin",
            "--filter-paths", "node_modules", "--solc-args=--optimize", "--fail-none",
            "--json", str(report),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert report.exists(), proc.stdout[-2_000:] + proc.stderr[-4_000:]
    findings = json.loads(report.read_text())["results"]["detectors"]
    serious = {_key(f): f["description"] for f in findings if f["impact"] in ("High", "Medium")}
    explained = json.loads(TRIAGE.read_text())["findings"]
    unexplained = {k: v for k, v in serious.items() if k not in explained}
    assert not unexplained, json.dumps(unexplained, indent=2)
    assert findings, "Slither reported nothing at all: it did not analyse the contracts"
