"""The report in a real headless Chromium: every plot decodes and renders; a screenshot.

No skips: without chromium/chromedriver these tests fail with a message naming `make setup`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chainml.errors import ToolchainError
from chainml.report import PLOTS
from chainml.report.browser import Browser, check_page, find_chromium
from tests.report.test_report_files import png_size

BROKEN_PAGE = (
    '<html><body><img id="truncated" alt="a PNG cut after its signature" '
    'src="data:image/png;base64,iVBORw0KGgo="><img id="missing" alt="no such file" '
    'src="missing.png"></body></html>'
)


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_chromium_and_chromedriver_are_installed():
    try:
        find_chromium()
    except ToolchainError as exc:
        pytest.fail(str(exc))


def test_missing_browser_error_names_make_setup(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainError, match=r"make setup.*chromium-driver"):
        find_chromium()


def test_report_renders_every_plot_in_headless_chromium(built_report, tmp_path):
    shot = tmp_path / "report-screenshot.png"
    page = check_page(built_report.html, shot)
    assert page.title.startswith("chainml report")
    assert [i.id for i in page.images] == [f"plot-{p.id}" for p in PLOTS]
    for image in page.images:
        assert image.complete and (image.natural_width, image.natural_height) == (700, 400), image
        assert image.alt
    width, height = png_size(shot.read_bytes())
    assert width >= 1_000 and height > 2_000  # the full page, not just the first screen


def test_a_broken_image_is_detected_and_nothing_is_left_running(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(BROKEN_PAGE)
    with Browser() as browser:
        profile = str(browser._profile)
        driver_pid = browser._proc.pid if browser._proc else -1
        browser.open(page.as_uri())
        widths = {i.id: i.natural_width for i in browser.images()}
        assert _processes_mentioning(profile)  # chromium runs with our fresh profile
    assert widths == {"truncated": 0, "missing": 0}
    assert not _processes_mentioning(profile)
    with pytest.raises(ProcessLookupError):
        os.kill(driver_pid, 0)
