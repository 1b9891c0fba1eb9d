"""Loading run directories: what is required, and errors that name the file and line."""

from __future__ import annotations

import json

import pytest

from chainml.errors import ConfigError
from chainml.report import build_report, load_run


def test_loads_config_rounds_and_nodes_sorted(run_dir):
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    (run_dir / "rounds.jsonl").write_text("\n".join(reversed(lines)) + "\n\n")
    run = load_run(run_dir)
    assert [r["round"] for r in run.rounds] == [1, 2, 3, 4, 5, 6]
    assert run.config["task"] == "sine" and len(run.nodes) == 6 * 8
    assert run.has_adversaries


def test_a_run_dir_without_rounds_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"no rounds\.jsonl"):
        load_run(tmp_path)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"round": 2, "status": ', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"status": "finalized"}', "missing or invalid round"),
        ('{"round": "two"}', "missing or invalid round"),
    ],
)
def test_malformed_lines_name_file_and_line(run_dir, bad_line, message):
    path = run_dir / "rounds.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(2, bad_line)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message) as exc:
        load_run(run_dir)
    assert f"{path}, line 3" in str(exc.value)


def test_malformed_nodes_and_config_are_named_too(run_dir):
    (run_dir / "nodes.jsonl").write_text('{"round": 1}\n')
    with pytest.raises(ConfigError, match=r"nodes\.jsonl, line 1: missing or invalid node"):
        load_run(run_dir)
    (run_dir / "nodes.jsonl").unlink()
    (run_dir / "config.json").write_text("[]")
    with pytest.raises(ConfigError, match=r"config\.json must hold a JSON object"):
        load_run(run_dir)


def test_a_partial_run_still_gets_every_section(tmp_path):
    """One closed round, no nodes.jsonl, no config: every plot renders with a no-data note."""
    run = tmp_path / "partial"
    run.mkdir()
    closed = {"round": 1, "status": "closed", "version": None, "aggregate_cid": None,
              "metrics_cid": None, "committed": 0, "included": 0, "dropped": 3}  # fmt: skip
    (run / "rounds.jsonl").write_text(json.dumps(closed) + "\n")
    files = build_report(run, tmp_path / "out")
    assert len(files.plots) == 5 and all(p.stat().st_size > 1_000 for p in files.plots.values())
    html = files.html.read_text()
    assert "No nodes.jsonl in this run." in html and "no config.json" in html
