"""The report files: deterministic PNGs, one self-contained HTML with every plot inlined."""

from __future__ import annotations

import base64
import re
import struct

from typer.testing import CliRunner

from chainml.errors import ConfigError
from chainml.report import PLOTS, build_report, load_run, render_png
from tests.report.rundirs import write_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    return struct.unpack(">II", data[16:24])


def test_every_plot_is_written_as_a_png(built_report):
    assert set(built_report.plots) == {p.id for p in PLOTS}
    for path in built_report.plots.values():
        assert path.parent == built_report.html.parent
        assert png_size(path.read_bytes()) == (700, 400)


def test_plots_are_deterministic_and_show_the_data(run_dir, tmp_path):
    run = load_run(run_dir)
    for plot in PLOTS:
        assert render_png(plot, run) == render_png(plot, run), plot.id
    # The same plot of another run (other numbers, no adversaries) is a different image.
    other = load_run(write_run(tmp_path / "other", adversaries=0, seed=99))
    for plot in PLOTS:
        assert render_png(plot, run) != render_png(plot, other), plot.id


def test_html_is_self_contained(built_report):
    html = built_report.html.read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "url(" not in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_html_inlines_each_png_with_id_and_alt(built_report):
    html = built_report.html.read_text()
    images = re.findall(
        r'<img id="plot-([\w-]+)" alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html
    )
    assert [i[0] for i in images] == [p.id for p in PLOTS]
    for plot_id, alt, data in images:
        assert base64.b64decode(data) == built_report.plots[plot_id].read_bytes()
        assert len(alt) > 20


def test_html_has_summary_rounds_nodes_and_config(built_report):
    html = built_report.html.read_text()
    rounds = re.search(r'id="rounds">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert rounds is not None and rounds.group(1).count("<tr>") == 6
    assert ">closed</td>" in rounds.group(1)
    nodes = re.search(r'id="nodes">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert nodes is not None and nodes.group(1).count("<tr>") == 8
    assert nodes.group(1).count("sign_flip") == 2
    assert "trimmed_mean" in html and "<b>6</b>rounds" in html and "<b>5</b>finalized" in html


def _root():
    import typer

    from chainml.cli.report_cmd import report

    root = typer.Typer(pretty_exceptions_enable=False)
    root.callback()(lambda: None)
    root.command("report")(report)
    return root


def test_report_command_writes_files_and_lists_them(run_dir, tmp_path):
    out = tmp_path / "custom-out"
    result = CliRunner().invoke(_root(), ["report", str(run_dir), "--out-dir", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"report: {out / 'report.html'}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.html", *(f"{p.id}.png" for p in PLOTS)]
    )
    default = CliRunner().invoke(_root(), ["report", str(run_dir)])
    assert default.exit_code == 0 and (run_dir / "report" / "report.html").is_file()


def test_report_command_error_for_a_non_run_dir(tmp_path):
    result = CliRunner().invoke(_root(), ["report", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, ConfigError)
    assert "rounds.jsonl" in str(result.exception)


def test_build_report_default_out_dir(run_dir):
    files = build_report(run_dir)
    assert files.html == run_dir / "report" / "report.html"
