"""The harness's observations of a round, written to its run directory as JSONL.

The metrics file a proposal names (``chainml.protocol.round_metrics``) holds only what
validators recompute from chain and IPFS data. What the harness adds is its own: held-out
learning curves of the finalized version's weights (which anyone can evaluate from the public
version file), the simulated devices' bytes, energy and events, wall times and gas.

``rounds.jsonl`` is the commit marker of a round: node rows of a round are appended first, the
round row last, so a resume can drop node rows of a round that has no round row yet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainml.meta.adapt import AdaptConfig
from chainml.meta.evaluate import evaluate
from chainml.meta.models import get_model
from chainml.meta.protocols import device_protocol
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import get_family

CURVE_STEPS = (0, 1, 5, 10)
ROUNDS_FILE = "rounds.jsonl"
NODES_FILE = "nodes.jsonl"
OPENED_FILE = "opened.jsonl"


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean and max of a non-empty sequence (zeros when empty)."""
    if not values:
        return {"mean": 0.0, "max": 0.0}
    return {"mean": float(np.mean(values)), "max": float(np.max(values))}


def event_summary(outcomes: Sequence[Any]) -> dict[str, float]:
    """A spiking round's event-driven accounting: devices that sent and that stayed silent,
    the energy all spent, and what the silent ones saved, estimated by the round's senders'
    mean cost (download, compute, upload) less the check a silent device ran."""
    sent = [o for o in outcomes if o.status == "ok"]
    silent = [o for o in outcomes if o.status == "silent"]
    sender_j = float(np.mean([o.energy_j for o in sent])) if sent else 0.0
    sender_bytes = float(np.mean([o.bytes_up + o.bytes_down for o in sent])) if sent else 0.0
    return {
        "sent": len(sent),
        "silent": len(silent),
        "energy_j": float(sum(o.energy_j for o in sent + silent)),
        "saved_energy_j": float(sum(max(sender_j - o.energy_j, 0.0) for o in silent)),
        "saved_radio_bytes": sender_bytes * len(silent),
        "loss_sent": summary([o.loss_after for o in sent])["mean"],
        "loss_silent": summary([o.loss_after for o in silent])["mean"],
    }


def observations(
    params: Mapping[str, torch.Tensor],
    recipe: Recipe,
    outcomes: Sequence[Any],
    *,
    task: str,
    eval_tasks: int,
    eval_shots: int,
    inner_lr: float,
    seed: int,
) -> dict[str, Any]:
    """A finalized version's held-out scores and its round's device figures (``outcomes``: the
    simulated devices' round, :class:`chainml.swarm.node_job.NodeOutcome`), as a round row
    carries them: ``heldout``, ``curve`` (the version's and the from-scratch baseline's),
    ``bytes_per_node``, ``energy_per_node_j`` and, for spiking devices, ``events``."""
    meta = curve(
        params, task, eval_tasks=eval_tasks, shots=eval_shots, inner_lr=inner_lr, seed=seed
    )
    ok = [o for o in outcomes if o.status == "ok"]
    body: dict[str, Any] = {
        "heldout": {
            "loss_before": meta["0"],
            "loss_after": meta[str(max(int(k) for k in meta))],
            "device": device_score(params, task, recipe, eval_tasks=eval_tasks, seed=seed),
        },
        "curve": {
            "meta": meta,
            "scratch": scratch_curve(task, eval_tasks, eval_shots, inner_lr, seed),
        },
        "bytes_per_node": summary([o.bytes_up + o.bytes_down for o in ok]),
        "energy_per_node_j": summary([o.energy_j for o in ok]),
    }
    if recipe.spiking is not None:
        body["events"] = event_summary(outcomes)
    return body


def curve(
    params: Mapping[str, torch.Tensor],
    task: str,
    *,
    eval_tasks: int,
    shots: int,
    inner_lr: float,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Held-out loss after k adaptation steps on ``shots`` samples, mean and 95% CI.

    Adaptation follows the MAML evaluation protocol (Finn et al. 2017): full-batch SGD on the
    K shots at ``inner_lr``, so the numbers compare with the published ones.
    """
    family = get_family(task)
    result = evaluate(
        params,
        family,
        n_tasks=eval_tasks,
        shots=shots,
        steps=CURVE_STEPS,
        adapt_config=AdaptConfig(inner_lr=inner_lr),
        seed=seed,
    )
    out = {}
    for step in CURVE_STEPS:
        r = result.at(step)
        out[str(step)] = {"mean": _finite(r.loss_mean), "ci95": _finite(r.loss_ci95)}
        if r.acc_mean is not None:
            out[str(step)] |= {"acc": _finite(r.acc_mean), "acc_ci95": _finite(r.acc_ci95 or 0)}
    return out


def device_score(
    params: Mapping[str, torch.Tensor], task: str, recipe: Recipe, *, eval_tasks: int, seed: int
) -> dict[str, float]:
    """Held-out loss under the device protocol (:mod:`chainml.meta.protocols`), mean and 95% CI."""
    loss, ci, acc = device_protocol(params, get_family(task), recipe, n_tasks=eval_tasks, seed=seed)
    out = {"mean": _finite(loss), "ci95": _finite(ci)}
    if acc is not None:
        out["acc"] = _finite(acc)
    return out


@cache
def scratch_curve(
    task: str, eval_tasks: int, shots: int, inner_lr: float, seed: int
) -> dict[str, dict[str, float]]:
    """The from-scratch baseline: a fresh random init adapted the same way."""
    arch = get_family(task).default_arch
    params = get_model(arch).init(seed + 1_000_003)
    return curve(params, task, eval_tasks=eval_tasks, shots=shots, inner_lr=inner_lr, seed=seed)


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else float("nan")


@dataclass
class RunLog:
    """Append-only JSONL files of one run directory."""

    run_dir: Path

    def completed_rounds(self) -> dict[int, dict[str, Any]]:
        """Round rows already written, keyed by round id; drops a torn last line."""
        rows = _read_jsonl(self.run_dir / ROUNDS_FILE)
        return {int(r["round"]): r for r in rows}

    def clean_orphans(self) -> None:
        """Drop node rows of rounds whose round row was never written (a crash in between)."""
        done = set(self.completed_rounds())
        path = self.run_dir / NODES_FILE
        rows = _read_jsonl(path)
        kept = [r for r in rows if int(r["round"]) in done]
        if len(kept) != len(rows) or _has_torn_tail(path):
            _write_jsonl(path, kept)
        rounds_path = self.run_dir / ROUNDS_FILE
        if _has_torn_tail(rounds_path):
            _write_jsonl(rounds_path, _read_jsonl(rounds_path))

    def opened_rounds(self) -> set[int]:
        """Rounds this run opened or carried on (so a resume adopts them, and only them)."""
        return {int(r["round"]) for r in _read_jsonl(self.run_dir / OPENED_FILE)}

    def mark_opened(self, round_id: int) -> None:
        if round_id not in self.opened_rounds():
            _append_jsonl(self.run_dir / OPENED_FILE, [{"round": round_id}])

    def append_round(self, node_rows: Sequence[dict[str, Any]], round_row: dict[str, Any]) -> None:
        _append_jsonl(self.run_dir / NODES_FILE, node_rows)
        _append_jsonl(self.run_dir / ROUNDS_FILE, [round_row])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # a torn last line from a crash mid-write
    return rows


def _has_torn_tail(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    tmp.replace(path)


def _append_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        out.flush()
