"""Fixtures for the report tests: realistic run directories written by ``rundirs.write_run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.rundirs import write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


@pytest.fixture(scope="module")
def built_report(tmp_path_factory: pytest.TempPathFactory):
    """One report built once per module (plotting costs about a second)."""
    from chainml.report import build_report

    run = write_run(tmp_path_factory.mktemp("built") / "run")
    return build_report(run)
