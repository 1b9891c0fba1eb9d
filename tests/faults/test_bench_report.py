"""bench/faults.py's attack report: every loss is a mean over seeds of same-seed triples.

One seed's trajectory is chaotic (leaving one node of 50 out moved the loss by up to 1.5x), so
the bench repeats clean, undefended and defended for each seed and reports the means, with
each seed's loss beside them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chainml.benchtable import rows_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_attack_entries_are_means_over_same_seed_triples() -> None:
    argv = [
        sys.executable,
        "bench/faults.py",
        "--quick",
        "--skip-faults",
        "--skip-validators",
        "--swarm-attacks",
        "",
        "--twin-attacks",
        "sign_flip",
        "--nodes",
        "10",
        "--rounds",
        "3",
        "--seeds",
        "2",
        "--jobs",
        "1",
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["seeds"] == 2
    entry = report["attacks"]["sign_flip@0.2"]
    for key in ("honest_excluded_fraction", "adversaries_below_honest"):
        assert key in entry
    for run in ("clean", "undefended", "defended"):
        by_seed = entry["loss_by_seed"][run]
        assert len(by_seed) == 2
        assert by_seed[0] != by_seed[1]  # another seed is another fleet, not a repeat
        assert entry[f"{run}_loss"] == pytest.approx(sum(by_seed) / 2, abs=2e-4)
    assert report["clean_loss"] == entry["clean_loss"]
    # how heterogeneous the clean fleet is, and the order of bias that allows at each fraction
    spread = report["clean_heterogeneity"]
    ratio = spread["zeta2_over_mean2"]
    assert ratio > 1  # one task per device: the spread outweighs the mean
    for fraction, bias in spread["bias_order_over_signal"].items():
        assert bias == pytest.approx((float(fraction) * ratio) ** 0.5, abs=0.01)
    # the report reads right in `python -m chainml.benchtable`: every verdict is a boolean, the
    # undefended loss is a lower bound, and facts such as "diverged" are values, not checks
    assert all(isinstance(v, bool) or v is None for v in report["pass"].values())
    assert report["pass"]["no_defence_failing"] == (
        not report["failing_at_20pct"]["defence_failing"]
    )
    assert set(entry["diverged"]) <= {"undefended", "defended"}
    rows = rows_for("faults.py", report)
    assert not [r for r in rows if "diverged" in r.figure and r.verdict]
    assert "≥ 2" in {r.target for r in rows if r.figure.endswith("undefended_x")}
