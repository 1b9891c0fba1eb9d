"""``python -m chainml.benchtable``: run every ``bench/*.py`` and write ``bench/results.md``.

Each bench script prints one JSON object as its last stdout line. Scripts nest results
differently, so the JSON is flattened to dotted key paths; a ``targets`` object anywhere gives
limits and a ``pass`` object gives verdicts, both matched to figures by key path suffix
(``targets.direct_commit`` -> ``gas.direct_commit``). A numeric target is an upper bound unless
written ``{"min": x}``. Other booleans are checks in their own right. A script that fails or
prints no JSON becomes a row saying so, never a crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from chainml.paths import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "bench"
SPECIAL = ("targets", "pass")
TIMEOUT_S = 3_600


@dataclass(frozen=True)
class Row:
    script: str
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # "pass", "FAIL" or ""


@dataclass(frozen=True)
class ScriptRun:
    script: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {"a.b.c": leaf}; lists are leaves."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _suffix_match(path: str, candidates: list[str]) -> str | None:
    """The candidate whose dotted path ends with ``path`` (shortest if several)."""
    hits = [c for c in candidates if c == path or c.endswith("." + path)]
    return min(hits, key=len) if hits else None


def _special_parts(flat: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split flattened JSON into figures, targets and verdicts (relative key paths)."""
    figures, targets, verdicts = {}, {}, {}
    for path, value in flat.items():
        parts = path.split(".")
        special = next((i for i, p in enumerate(parts) if p in SPECIAL), None)
        if special is None:
            figures[path] = value
            continue
        rest = ".".join(parts[special + 1 :])
        if parts[special] == "targets":
            # {"min": x} / {"max": x} targets flatten to "name.min": keep the bound kind.
            if parts[-1] in ("min", "max") and len(parts) - special > 2:
                targets[".".join(parts[special + 1 : -1])] = (parts[-1], value)
            else:
                targets[rest] = ("max", value)
        else:
            verdicts[rest] = value
    return figures, targets, verdicts


def rows_for(script: str, result: dict[str, Any]) -> list[Row]:
    figures, targets, verdicts = _special_parts(flatten(result))
    names = [p for p, v in figures.items() if not isinstance(v, str)]
    target_of = {}
    for path, bound in targets.items():
        match = _suffix_match(path, names)
        target_of[match or path] = bound
    verdict_of = {}
    for path, ok in verdicts.items():
        verdict_of[_suffix_match(path, names) or path] = bool(ok)
    rows = []
    for path in [*names, *(p for p in {**target_of, **verdict_of} if p not in names)]:
        value = figures.get(path)
        bound = target_of.get(path)
        verdict = verdict_of.get(path)
        if verdict is None and bound is not None and isinstance(value, int | float):
            kind, limit = bound
            verdict = value >= limit if kind == "min" else value <= limit
        if verdict is None and isinstance(value, bool):
            verdict = value
        target = "" if bound is None else f"{'≥' if bound[0] == 'min' else '≤'} {_fmt(bound[1])}"
        verdict_text = "" if verdict is None else ("pass" if verdict else "FAIL")
        rows.append(Row(script, path, "-" if value is None else _fmt(value), target, verdict_text))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return json.dumps(value)


def parse_run(run: ScriptRun) -> list[Row]:
    """Rows of one script's run; a failed or silent script is one FAIL row."""
    last = next((ln for ln in reversed(run.stdout.splitlines()) if ln.strip()), "")
    try:
        result = json.loads(last)
        if not isinstance(result, dict):
            raise ValueError("the last line is JSON but not an object")
    except ValueError:
        why = (
            "timed out" if run.returncode is None
            else f"exit code {run.returncode}" if run.returncode else "no JSON on its last line"
        )  # fmt: skip
        tail = next((ln for ln in reversed(run.stderr.splitlines()) if ln.strip()), "")
        detail = f"{why}: {tail}" if tail else why
        return [Row(run.script, "(script failed)", detail[:200], "", "FAIL")]
    rows = rows_for(run.script, result)
    if run.returncode:
        rows.append(Row(run.script, "(exit code)", str(run.returncode), "0", "FAIL"))
    return rows


def render(rows: list[Row], runs: list[ScriptRun]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m chainml.benchtable`). Numbers depend on the machine.",
        "",
        "| script | figure | value | target | result |",
        "|---|---|--:|--:|:-:|",
    ]
    lines += [
        f"| {cell(r.script)} | {cell(r.figure)} | {cell(r.value)} | {cell(r.target)} | "
        f"{r.verdict} |"
        for r in rows
    ]
    timed = [r for r in runs if r.seconds > 0]
    times = ", ".join(f"{r.script} {r.seconds:.0f} s" for r in timed) or "from saved logs"
    failed = sum(r.verdict == "FAIL" for r in rows)
    lines += [
        "",
        f"{failed} failing of {sum(bool(r.verdict) for r in rows)} checked; run time: {times}.",
    ]
    return "\n".join(lines) + "\n"


def run_script(
    script: Path, timeout: float, on_line: Callable[[str], None] | None = None
) -> ScriptRun:
    """Run one bench script, streaming its stdout lines to ``on_line`` (for the progress bar)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=err, text=True,
            cwd=PROJECT_ROOT,
        )  # fmt: skip
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None and line.strip():
                on_line(line.strip())
            if time.monotonic() - start > timeout:
                proc.kill()
                break
        code = proc.wait()
        timed_out = time.monotonic() - start > timeout
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return ScriptRun(script.name, None if timed_out else code, "".join(lines), stderr,
                     time.monotonic() - start)  # fmt: skip


def main(
    bench_dir: Annotated[Path, typer.Option(help="Where the bench scripts are.")] = BENCH_DIR,
    out: Annotated[
        Path | None, typer.Option(help="Output file.", show_default="BENCH_DIR/results.md")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per script.")] = TIMEOUT_S,
    check: Annotated[bool, typer.Option(help="Exit 1 if any figure misses its target.")] = False,
    logs: Annotated[
        Path | None,
        typer.Option(
            help="Tabulate saved runs instead: DIR/<script>.log holds a script's stdout "
            "(scripts without a log are listed as not run)."
        ),
    ] = None,
) -> None:
    """Run every bench/*.py and write one markdown table of figures beside their targets."""
    console = Console(stderr=True)
    scripts = sorted(bench_dir.glob("*.py"))
    rows: list[Row] = []
    runs: list[ScriptRun] = []
    if logs is not None:
        if not logs.is_dir():
            typer.echo(f"error: --logs {logs} is not a directory", err=True)
            raise typer.Exit(2)
        for script in scripts:
            run = saved_run(script, logs)
            if run is None:
                rows.append(Row(script.name, "(not run)", f"no {script.stem}.log in {logs}"))
                continue
            runs.append(run)
            rows += parse_run(run)
        _write(rows, runs, out or bench_dir / "results.md", console, check)
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), TextColumn("[dim]{task.fields[last]}"), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("bench", total=len(scripts), last="")
        for script in scripts:
            bar.update(task, description=f"bench {script.name}", last="")
            run = run_script(script, timeout, lambda ln: bar.update(task, last=ln[:60]))
            runs.append(run)
            rows += parse_run(run)
            bar.advance(task)
    _write(rows, runs, out or bench_dir / "results.md", console, check)


def saved_run(script: Path, logs: Path) -> ScriptRun | None:
    """A script's earlier run, from its saved stdout (``logs/<stem>.log``), or None."""
    log = logs / f"{script.stem}.log"
    if not log.is_file():
        return None
    return ScriptRun(script.name, 0, log.read_text(errors="replace"), "", 0.0)


def _write(
    rows: list[Row], runs: list[ScriptRun], target: Path, console: Console, check: bool
) -> None:
    target.write_text(render(rows, runs))
    failed = [r for r in rows if r.verdict == "FAIL"]
    console.print(f"wrote {target}: {len(rows)} rows, {len(failed)} failing")
    if check and failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
