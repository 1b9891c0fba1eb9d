"""Swarm round cost at N = 10, 100 and 1,000 nodes (batched mode, sine, 2 worker processes).

Each N gets a fresh Anvil chain and data directory. Round 1 includes one-off work (registering
the fleet, starting workers), so the figures are the mean of the later rounds. Prints a table,
then one JSON object as the last line. Target: a 1,000-node batched round within 60 s.

    python bench/swarm.py [--sizes 10,100,1000] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chainml.cli.swarm_cmd import run_swarm
from chainml.services.chain import LocalChain
from chainml.swarm.config import SwarmConfig

TARGET_1000_S = 60.0
TARGET_HELP_S = 0.5


def measure(nodes: int, rounds: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"chainml-bench-swarm-{nodes}-") as tmp:
        data_dir = Path(tmp)
        chain = LocalChain(data_dir)
        info = chain.up()
        try:
            start = time.perf_counter()
            rows = run_swarm(
                SwarmConfig(nodes=nodes, rounds=rounds, mode="batched"),
                data_dir=data_dir,
                run_dir=data_dir / "run",
                rpc_url=info.url,
                ipfs="embedded",
                workers=workers,
                show_progress=False,
            )
            total = time.perf_counter() - start
        finally:
            chain.down()
    steady = rows[1:] or rows
    keys = ("adapt", "ipfs", "chain", "aggregate", "validate", "total")
    wall = {k: round(sum(r["wall_time_s"][k] for r in steady) / len(steady), 3) for k in keys}
    gas = sum(r["gas"]["total"] for r in steady) / len(steady)
    return {
        "nodes": nodes,
        "rounds": rounds,
        "finalized": sum(r["status"] == "finalized" for r in rows),
        "wall_per_round_s": wall,
        "gas_per_node": round(gas / nodes),
        "bytes_per_node": round(sum(r["bytes_per_node"]["mean"] for r in steady) / len(steady)),
        "energy_per_node_mj": round(
            1e3 * sum(r["energy_per_node_j"]["mean"] for r in steady) / len(steady), 3
        ),
        "run_wall_s": round(total, 1),
    }


def cli_help_seconds(runs: int = 5) -> float:
    """The fastest of ``runs`` cold starts of ``chainml --help`` (a fresh process each)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "chainml", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = [
        measure(int(n), args.rounds, args.workers) for n in args.sizes.split(",") if n.strip()
    ]
    print(f"{'nodes':>6} {'round s':>8} {'adapt':>7} {'ipfs':>7} {'chain':>7} {'aggr':>7} "
          f"{'valid':>7} {'gas/node':>9} {'bytes/node':>10} {'mJ/node':>8}")  # fmt: skip
    for r in results:
        w = r["wall_per_round_s"]
        print(
            f"{r['nodes']:>6} {w['total']:>8.2f} {w['adapt']:>7.2f} {w['ipfs']:>7.2f} "
            f"{w['chain']:>7.2f} {w['aggregate']:>7.2f} {w['validate']:>7.2f} "
            f"{r['gas_per_node']:>9,} {r['bytes_per_node']:>10,} {r['energy_per_node_mj']:>8.3f}"
        )
    help_s = cli_help_seconds()
    print(f"chainml --help: {help_s:.3f} s (best of 5)")
    by_size = {str(r["nodes"]): r for r in results}
    round_1000 = by_size.get("1000", {}).get("wall_per_round_s", {}).get("total")
    summary = {
        "bench": "swarm",
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "results": by_size,
        "cli_help_s": round(help_s, 3),
        "targets": {"round_1000_nodes_s": TARGET_1000_S, "cli_help_s": TARGET_HELP_S},
        "pass": {
            "round_1000_nodes_s": round_1000 is not None and round_1000 <= TARGET_1000_S,
            "cli_help_s": help_s <= TARGET_HELP_S,
        },
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
