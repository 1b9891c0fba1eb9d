"""Load a swarm run directory: ``config.json``, ``rounds.jsonl`` and ``nodes.jsonl``.

Only ``rounds.jsonl`` is required; a run cut short or still going has fewer (or partial)
rounds and the report shows what there is. A line that is not a JSON object, or lacks its
``round`` number, is an error naming the file and line, since silently skipping it would
make the plots lie.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainml.errors import ConfigError

CONFIG = "config.json"
ROUNDS = "rounds.jsonl"
NODES = "nodes.jsonl"


@dataclass(frozen=True)
class RunData:
    """One run, as written by the swarm; records stay plain dicts (the schema is the swarm's)."""

    path: Path
    config: dict[str, Any]
    rounds: list[dict[str, Any]]
    """Sorted by round number."""
    nodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_adversaries(self) -> bool:
        return any(n.get("adversary") for n in self.nodes)


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    rounds_path = run_dir / ROUNDS
    if not rounds_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a run directory: it has no {ROUNDS} (a swarm run writes one "
            "line per round there)"
        )
    rounds = _read_jsonl(rounds_path, required=("round",))
    nodes_path = run_dir / NODES
    nodes = _read_jsonl(nodes_path, required=("round", "node")) if nodes_path.is_file() else []
    return RunData(
        path=run_dir,
        config=_read_config(run_dir / CONFIG),
        rounds=sorted(rounds, key=lambda r: r["round"]),
        nodes=nodes,
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return config


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}, line {number}: not valid JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ConfigError(f"{path}, line {number}: expected a JSON object")
            missing = [k for k in required if not isinstance(record.get(k), int | str)]
            if missing or not isinstance(record["round"], int):
                raise ConfigError(
                    f"{path}, line {number}: missing or invalid {', '.join(missing or ['round'])}"
                )
            out.append(record)
    return out
