"""Write realistic swarm run directories (the schema the swarm writes) for the report tests.

Numbers follow the shape of a real run: held-out loss falls round by round, the meta-init
adapts faster than the baselines, adversaries get excluded and lose reputation. A seeded RNG
keeps every file identical across runs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

STEPS = ("0", "1", "5", "10")


def _ci(rng: random.Random, mean: float) -> dict[str, float]:
    return {"mean": round(mean, 6), "ci95": round(mean * rng.uniform(0.05, 0.15), 6)}


def round_record(rnd: int, rng: random.Random, n_nodes: int, adversaries: int) -> dict[str, Any]:
    loss = 3.0 / (1 + 0.4 * rnd)
    dropped = rng.randint(0, 1)
    gas = {"commit": 54_000 * (n_nodes - dropped), "propose": rng.randint(170_000, 190_000),
           "vote": 95_000 * 3, "finalize": 120_000, "settle": 30_000 * n_nodes}  # fmt: skip
    gas["total"] = sum(gas.values())
    return {
        "round": rnd, "status": "finalized", "version": rnd,
        "aggregate_cid": f"bafkreiaggregate{rnd:04d}", "metrics_cid": f"bafkreimetrics{rnd:04d}",
        "committed": n_nodes - dropped, "included": n_nodes - dropped - adversaries,
        "excluded": adversaries, "dropped": dropped,
        "heldout": {"loss_before": _ci(rng, loss * 1.8), "loss_after": _ci(rng, loss)},
        "curve": {
            "meta": {k: _ci(rng, loss * 1.8 / (1 + int(k) * 0.5)) for k in STEPS},
            "scratch": {k: _ci(rng, 4.0 / (1 + int(k) * 0.05)) for k in STEPS},
            "fedavg": {k: _ci(rng, 2.6 / (1 + int(k) * 0.15)) for k in STEPS},
        },
        "bytes_per_node": {"mean": 24_000.0 + rng.uniform(-900, 900), "max": 31_000.0},
        "energy_per_node_j": {"mean": 0.8 + rng.uniform(-0.1, 0.1), "max": 1.3},
        "gas": gas,
        "wall_time_s": {"adapt": 2.1, "ipfs": 0.4, "chain": 1.2, "aggregate": 0.3,
                        "validate": 0.5, "total": 4.5},
    }  # fmt: skip


def node_records(rnd: int, n_nodes: int, adversaries: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n_nodes):
        bad = i >= n_nodes - adversaries
        out.append({
            "round": rnd, "node": f"0x{i + 1:040x}", "index": i, "adversary": bad,
            "attack": "sign_flip" if bad else None, "status": "excluded" if bad else "included",
            "bytes_up": 12_000 + rng.randint(0, 500), "bytes_down": 12_000,
            "energy_j": round(0.8 + rng.random() * 0.1, 4), "airtime_s": 0.4,
            "loss_before": 2.0, "loss_after": 0.5 if not bad else 3.0,
            "reputation": 1_000 + (-50 if bad else 10) * rnd,
        })  # fmt: skip
    return out


def write_run(
    path: Path, *, rounds: int = 6, n_nodes: int = 8, adversaries: int = 2, seed: int = 7
) -> Path:
    """A complete run: every round finalized except round 4, which closed without a version."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    config = {"nodes": n_nodes, "rounds": rounds, "task": "sine", "mode": "batched",
              "aggregation": "trimmed_mean", "seed": seed,
              "adversaries": adversaries / n_nodes, "attack": "sign_flip" if adversaries else None,
              "rpc_url": "http://127.0.0.1:8545"}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    lines, node_lines = [], []
    for rnd in range(1, rounds + 1):
        record = round_record(rnd, rng, n_nodes, adversaries)
        if rnd == 4:
            record.update(status="closed", version=None, aggregate_cid=None, metrics_cid=None)
            del record["heldout"], record["curve"]
        if rnd == rounds:
            del record["curve"]["fedavg"]  # a baseline may be missing
        lines.append(json.dumps(record))
        node_lines += [json.dumps(n) for n in node_records(rnd, n_nodes, adversaries, rng)]
    (path / "rounds.jsonl").write_text("\n".join(lines) + "\n")
    (path / "nodes.jsonl").write_text("\n".join(node_lines) + "\n")
    return path
