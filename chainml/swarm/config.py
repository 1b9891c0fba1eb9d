"""What a swarm run is: every setting that changes its result, in one frozen, seeded config.

The config is written to ``<run dir>/config.json`` at the start. Rerunning the same command
resumes that run; a rerun with different settings on the same run directory is refused, so a
resumed run can never silently mix two experiments.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from chainml.aggregate.strategies import STRATEGIES
from chainml.errors import ConfigError
from chainml.meta.evaluate import MIN_TASKS
from chainml.meta.recipe import Recipe, SpikingRecipe
from chainml.meta.tasks import FAMILIES
from chainml.swarm.attacks import ATTACKS

Mode = Literal["direct", "relayed", "batched"]
MODES: tuple[str, ...] = ("direct", "relayed", "batched")
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class SwarmConfig:
    """One swarm run. Changing any field changes the run's results."""

    nodes: int = 50
    rounds: int = 10
    task: str = "sine"
    mode: Mode = "batched"
    aggregation: str = "guard"
    seed: int = 0
    shots: int | None = None
    """Support samples per device and round; None: the task family's recipe default (so are
    the other learning settings below)."""
    queries: int | None = None
    inner_steps: int | None = None
    inner_lr: float | None = None
    top_fraction: float | None = None
    server_lr: float | None = None
    relay_batch: int = 32
    merkle_batch: int = 256
    eval_tasks: int = 100
    eval_shots: int = 5
    profile_mix: str = "nrf52840-ble"
    """Comma-separated hardware profile names, assigned round-robin by node index."""
    min_commitments_fraction: float = 0.5
    dropout: float = 0.0
    adversaries: float = 0.0
    attack: str | None = None
    event_driven: bool | None = None
    """Spiking families: devices send only when their error crosses the trigger (True) or
    every round (False); None: the family's recipe default."""

    def __post_init__(self) -> None:
        problems = []
        if self.nodes < 1:
            problems.append(f"--nodes must be at least 1, got {self.nodes}")
        if self.rounds < 0:
            problems.append(f"--rounds must be >= 0, got {self.rounds}")
        if self.task not in FAMILIES:
            problems.append(f"--task {self.task!r} is not one of {', '.join(sorted(FAMILIES))}")
        if self.mode not in MODES:
            problems.append(f"--mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.aggregation not in STRATEGIES:
            problems.append(
                f"--aggregation {self.aggregation!r} is not one of {', '.join(STRATEGIES)}"
            )
        if self.top_fraction is not None and not 0 < self.top_fraction <= 1:
            problems.append(f"top fraction must be in (0, 1], got {self.top_fraction}")
        if self.eval_tasks < MIN_TASKS:
            problems.append(
                f"eval tasks must be at least {MIN_TASKS} (a 95% CI), got {self.eval_tasks}"
            )
        if not 0 <= self.dropout < 1:
            problems.append(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.adversaries < 1:
            problems.append(f"--adversaries must be in [0, 1), got {self.adversaries}")
        if not 1 <= self.relay_batch <= 256 or not 1 <= self.merkle_batch <= 65_536:
            problems.append("relay batch must be 1..256 and Merkle batch 1..65536")
        if self.attack is not None and self.attack not in ATTACKS:
            problems.append(f"--attack {self.attack!r} is not one of {', '.join(ATTACKS)}")
        if self.adversaries > 0 and self.attack is None:
            problems.append("--adversaries needs an --attack")
        if problems:
            raise ConfigError("; ".join(problems))

    def recipe(self) -> Recipe:
        """The learning recipe a fresh ledger's genesis records for this run: the task family's
        default with this config's explicit settings (every later version follows the genesis's
        recipe, never this config)."""
        explicit = {
            "support_shots": self.shots,
            "query_shots": self.queries,
            "inner_steps": self.inner_steps,
            "inner_lr": self.inner_lr,
            "top_fraction": self.top_fraction,
            "server_lr": self.server_lr,
        }
        overrides = {k: v for k, v in explicit.items() if v is not None}
        try:
            recipe = Recipe.for_family(self.task, aggregation=self.aggregation, **overrides)
        except ConfigError as exc:
            raise ConfigError(f"invalid swarm settings: {exc}") from exc
        if self.event_driven is None:
            return recipe
        if recipe.spiking is None:
            raise ConfigError(f"--event-driven/--always-update need a spiking task: {self.task}")
        ratio = recipe.spiking.event_ratio or SpikingRecipe().event_ratio
        spiking = replace(recipe.spiking, event_ratio=ratio if self.event_driven else None)
        return replace(recipe, spiking=spiking)

    @property
    def profiles(self) -> list[str]:
        return [p.strip() for p in self.profile_mix.split(",") if p.strip()]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SwarmConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown swarm config keys: {', '.join(unknown)}")
        return cls(**raw)


def bind_run_dir(run_dir: Path, config: SwarmConfig) -> None:
    """Record ``config`` in ``run_dir``, or check it matches the one recorded there."""
    path = run_dir / CONFIG_FILE
    if path.exists():
        try:
            recorded = SwarmConfig.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is corrupt ({exc}); use a new --run-dir") from exc
        if recorded != config:
            changed = sorted(
                k for k, v in config.to_json().items() if recorded.to_json().get(k) != v
            )
            raise ConfigError(
                f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
                "rerun with the same options to resume it, or use a new --run-dir"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
