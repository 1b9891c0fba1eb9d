"""``python -m chainml.benchtable`` on stand-in bench scripts: nesting, targets, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chainml.benchtable import ScriptRun, parse_run, rows_for

GAS_STYLE = {
    "gas": {"direct_commit": 54_027, "relayed_per_commitment_at_32": 21_000, "propose": 180_000},
    "targets": {"direct_commit": 60_000, "relayed_per_commitment_at_32": 20_000},
    "pass": {"direct_commit": True, "relayed_per_commitment_at_32": False,
             "round_gas_independent_of_registered_nodes": True},
    "notes": {"direct_commit": "max over the round"},
}  # fmt: skip
NESTED_STYLE = {
    "unit": "MB/s",
    "embedded": {"10KB": {"put": 120.5, "within_2x": True}, "1MB": {"put": 300.0}},
    "throughput": {"targets": {"embedded.1MB.put": {"min": 500}}},
}


def test_gas_style_figures_sit_beside_targets_and_verdicts():
    rows = {r.figure: r for r in rows_for("gas.py", GAS_STYLE)}
    assert (rows["gas.direct_commit"].target, rows["gas.direct_commit"].verdict) == (
        "≤ 60,000", "pass",
    )  # fmt: skip
    relayed = rows["gas.relayed_per_commitment_at_32"]
    assert (relayed.value, relayed.target, relayed.verdict) == ("21,000", "≤ 20,000", "FAIL")
    assert rows["gas.propose"].verdict == "" and rows["gas.propose"].target == ""
    independent = rows["round_gas_independent_of_registered_nodes"]
    assert (independent.value, independent.verdict) == ("-", "pass")
    assert not any(f.startswith(("notes", "targets", "pass")) for f in rows)


def test_other_nesting_min_targets_and_boolean_checks():
    rows = {r.figure: r for r in rows_for("storage.py", NESTED_STYLE)}
    assert rows["embedded.1MB.put"].target == "≥ 500"
    assert rows["embedded.1MB.put"].verdict == "FAIL"  # 300 < 500, computed from the target
    assert rows["embedded.10KB.within_2x"].verdict == "pass"
    assert "unit" not in rows


def test_a_failing_script_is_a_row_not_a_crash():
    crashed = ScriptRun("boom.py", 1, "starting\n", "Traceback\nRuntimeError: no chain\n", 0.1)
    (row,) = parse_run(crashed)
    assert row.verdict == "FAIL" and "exit code 1: RuntimeError: no chain" in row.value
    missed = ScriptRun("gas.py", 1, "table\n" + json.dumps(GAS_STYLE) + "\n", "", 1.0)
    rows = parse_run(missed)
    assert rows[-1].figure == "(exit code)" and rows[-1].verdict == "FAIL"


def test_module_runs_every_script_and_writes_one_table(tmp_path: Path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "a_gas.py").write_text(
        f"print('human table')\nimport json\nprint(json.dumps({GAS_STYLE!r}))\n"
    )
    (bench / "b_broken.py").write_text("raise SystemExit('cannot start anvil')\n")
    (bench / "c_nested.py").write_text(f"import json\nprint(json.dumps({NESTED_STYLE!r}))\n")
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "chainml.benchtable", "--bench-dir", str(bench), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = out.read_text()
    assert table.count("| script | figure |") == 1
    assert "| a_gas.py | gas.direct_commit | 54,027 | ≤ 60,000 | pass |" in table
    assert "| b_broken.py | (script failed) | exit code 1: cannot start anvil |  | FAIL |" in table
    assert "| c_nested.py | embedded.1MB.put | 300 | ≥ 500 | FAIL |" in table
    strict = subprocess.run(
        [sys.executable, "-m", "chainml.benchtable", "--bench-dir", str(bench), "--out",
         str(out), "--check"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert strict.returncode == 1


def test_saved_logs_are_tabulated_without_running_anything(tmp_path: Path):
    bench = tmp_path / "bench"
    bench.mkdir()
    # the scripts would fail if run: the table must come from the logs alone
    for name in ("a_gas", "b_missing"):
        (bench / f"{name}.py").write_text("raise SystemExit('must not run')\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a_gas.log").write_text(f"human table\n{json.dumps(GAS_STYLE)}\n")
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "chainml.benchtable", "--bench-dir", str(bench), "--out", str(out),
         "--logs", str(logs)], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = out.read_text()
    assert "| a_gas.py | gas.direct_commit | 54,027 | ≤ 60,000 | pass |" in table
    assert f"| b_missing.py | (not run) | no b_missing.log in {logs} |  |  |" in table
    assert "must not run" not in table
    bad = subprocess.run(
        [sys.executable, "-m", "chainml.benchtable", "--bench-dir", str(bench), "--out", str(out),
         "--logs", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "is not a directory" in bad.stderr
