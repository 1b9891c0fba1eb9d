"""Swarm round cost at N = 10, 100, 1,000 and 10,000 nodes (batched mode, sine, 2 workers).

Each N gets a fresh Anvil chain and data directory. Round 1 includes one-off work (registering
the fleet, starting workers), so the figures are the mean of the later rounds. The process
pool runs every size; the Ray executor (a private local instance on 127.0.0.1) runs the sizes
in ``--ray-sizes``. Prints a table, then one JSON object as the last line. Targets: a 1,000-node
batched round within 60 s, a 10,000-node round within 60 s on either executor, and
``chainml --help`` within 0.5 s.

    python bench/swarm.py [--sizes 10,100,1000,10000] [--ray-sizes 10000] [--rounds 3]
                          [--big-rounds 2] [--workers 2]
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

from chainml.services.chain import LocalChain
from chainml.swarm.config import SwarmConfig
from chainml.swarm.harness import run_swarm

TARGET_1000_S = 60.0
TARGET_10000_S = 60.0
TARGET_HELP_S = 0.5


def measure(
    nodes: int, rounds: int, workers: int, executor: str = "pool", aggregation: str = "guard"
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"chainml-bench-swarm-{nodes}-") as tmp:
        data_dir = Path(tmp)
        chain = LocalChain(data_dir)
        info = chain.up()
        try:
            start = time.perf_counter()
            rows = run_swarm(
                SwarmConfig(nodes=nodes, rounds=rounds, mode="batched", aggregation=aggregation),
                data_dir=data_dir,
                run_dir=data_dir / "run",
                rpc_url=info.url,
                ipfs="embedded",
                workers=workers,
                show_progress=False,
                executor_spec=executor,
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
        "executor": executor,
        "aggregation": aggregation,
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


def sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def print_table(results: list[dict[str, Any]]) -> None:
    head = ("nodes", "exec", "round s", "adapt", "ipfs", "chain", "aggr", "valid", "gas/node",
            "bytes/node", "mJ/node")  # fmt: skip
    widths = (6, 5, 8, 7, 7, 7, 7, 7, 9, 10, 8)
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for r in results:
        w = r["wall_per_round_s"]
        print(
            f"{r['nodes']:>6} {r['executor']:>5} {w['total']:>8.2f} {w['adapt']:>7.2f} "
            f"{w['ipfs']:>7.2f} {w['chain']:>7.2f} {w['aggregate']:>7.2f} {w['validate']:>7.2f} "
            f"{r['gas_per_node']:>9,} {r['bytes_per_node']:>10,} {r['energy_per_node_mj']:>8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--ray-sizes", default="10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--big-rounds", type=int, default=2, help="rounds for sizes of 5,000 nodes and more"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    def rounds(n: int) -> int:
        return args.big_rounds if n >= 5_000 else args.rounds

    results = [measure(n, rounds(n), args.workers) for n in sizes(args.sizes)]
    ray_results = [measure(n, rounds(n), args.workers, "ray") for n in sizes(args.ray_sizes)]
    print_table(results + ray_results)
    help_s = cli_help_seconds()
    print(f"chainml --help: {help_s:.3f} s (best of 5)")
    by_size = {str(r["nodes"]): r for r in results}
    ray_by_size = {str(r["nodes"]): r for r in ray_results}

    def round_s(table: dict[str, dict[str, Any]], nodes: int) -> float | None:
        return table.get(str(nodes), {}).get("wall_per_round_s", {}).get("total")

    round_1000 = round_s(by_size, 1000)
    pool_10000, ray_10000 = round_s(by_size, 10_000), round_s(ray_by_size, 10_000)
    summary = {
        "bench": "swarm",
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "results": by_size,
        "results_ray": ray_by_size,
        "round_s_10000_nodes_pool": pool_10000,
        "round_s_10000_nodes_ray": ray_10000,
        "cli_help_s": round(help_s, 3),
        "targets": {
            "round_1000_nodes_s": TARGET_1000_S,
            "round_s_10000_nodes_pool": TARGET_10000_S,
            "round_s_10000_nodes_ray": TARGET_10000_S,
            "cli_help_s": TARGET_HELP_S,
        },
        "pass": {
            "round_1000_nodes_s": round_1000 is not None and round_1000 <= TARGET_1000_S,
            "round_s_10000_nodes_pool": pool_10000 is not None and pool_10000 <= TARGET_10000_S,
            "round_s_10000_nodes_ray": ray_10000 is not None and ray_10000 <= TARGET_10000_S,
            "cli_help_s": help_s <= TARGET_HELP_S,
        },
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
