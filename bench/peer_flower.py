"""chainml's round against Flower's own simulation of the same workload, N = 100 and 1,000.

The workload: a 1-40-40-1 ReLU MLP on the sine family (one task per client), local training on
each client, FedAvg on the server.

- **Flower** (``flwr[simulation]==1.42.0``, its Ray simulation engine on 127.0.0.1 with
  ``--workers`` CPUs) runs ``bench/flower/sine_fedavg.py`` in its own venv (``make
  bench-setup``; it cannot share chainml's, see ``bench/flower/requirements.lock``): 10 SGD
  steps on one fresh sample each per client and round, Flower's ``FedAvg``, nothing else.
- **chainml** runs its swarm exactly as ``bench/swarm.py`` does (batched mode, a process pool
  of ``--workers``, a fresh Anvil and embedded IPFS per N): every device fetches the version from
  IPFS, computes the recipe's step (the MAML meta-gradient with the ridge head, 3 inner steps
  on 5 samples, 15 query samples), stores a sparse int8 update and signs an EIP-712
  commitment; the gateway posts Merkle batches, the challenger checks every leaf, the
  aggregator and 3 validators each recompute the aggregate, validators commit and reveal
  votes, and the version finalizes on chain. ``chainml_round_s`` uses FedAvg (``mean``), the
  workload's rule; ``chainml_guard_round_s`` the default robust rule (``guard``).

Both sides run on this machine in this run, one after the other; a round's figure is the mean
of the rounds after the first (which starts Ray, registers the fleet, warms up). Target:
chainml's round no slower than Flower's at both sizes. The last line is JSON.

    python bench/peer_flower.py [--sizes 100,1000] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FLOWER_PYTHON = ROOT / ".venv-flower" / "bin" / "python"
FLOWER_APP = BENCH / "flower" / "sine_fedavg.py"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
TIMEOUT_S = 3_600


def swarm_bench() -> Any:
    """``bench/swarm.py`` as a module: its ``measure`` is the swarm round this compares."""
    spec = importlib.util.spec_from_file_location("chainml_bench_swarm", BENCH / "swarm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flower_round(nodes: int, rounds: int, workers: int) -> dict[str, Any]:
    """Flower's simulation of ``nodes`` clients for ``rounds`` rounds (its own venv)."""
    if not FLOWER_PYTHON.exists():
        raise SystemExit(f"{FLOWER_PYTHON} is missing: run `make bench-setup` first")
    done = subprocess.run(
        [str(FLOWER_PYTHON), str(FLOWER_APP), "--nodes", str(nodes), "--rounds", str(rounds),
         "--workers", str(workers)],
        capture_output=True, text=True, timeout=TIMEOUT_S, env=os.environ | LOOPBACK_ENV,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"Flower's simulation failed ({done.returncode}): {' | '.join(tail)}")
    result = json.loads(lines[-1])
    steady = result["round_s"][1:] or result["round_s"]
    return result | {"steady_round_s": round(sum(steady) / len(steady), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    swarm = swarm_bench()
    flower: dict[str, dict[str, Any]] = {}
    chainml: dict[str, dict[str, Any]] = {}
    guard: dict[str, dict[str, Any]] = {}
    for n in sizes:
        flower[str(n)] = flower_round(n, args.rounds, args.workers)
        chainml[str(n)] = swarm.measure(n, args.rounds, args.workers, aggregation="mean")
        guard[str(n)] = swarm.measure(n, args.rounds, args.workers)
        print(
            f"N={n:>5}: Flower {flower[str(n)]['steady_round_s']:.2f} s/round, chainml "
            f"{chainml[str(n)]['wall_per_round_s']['total']:.2f} s (FedAvg), "
            f"{guard[str(n)]['wall_per_round_s']['total']:.2f} s (guard)",
            flush=True,
        )
    flower_s = {k: v["steady_round_s"] for k, v in flower.items()}
    chainml_s = {k: v["wall_per_round_s"]["total"] for k, v in chainml.items()}
    guard_s = {k: v["wall_per_round_s"]["total"] for k, v in guard.items()}
    exposed = sorted({x for v in flower.values() for x in v["non_loopback_listeners"]})
    seen = min((v["listeners"] for v in flower.values()), default=0)
    summary = {
        "bench": "peer_flower",
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "flwr": next(iter(flower.values()))["flwr"] if flower else None,
        "flower_round_s": flower_s,
        "chainml_round_s": chainml_s,
        "chainml_guard_round_s": guard_s,
        "chainml_phases_s": {k: v["wall_per_round_s"] for k, v in chainml.items()},
        "flower_ray_non_loopback_listeners": exposed,
        "flower_ray_listeners_checked": seen,
        "pass": {f"chainml_round_s_{n}": chainml_s[n] <= flower_s[n] for n in flower_s}
        | {"flower_ray_on_loopback": seen > 0 and not exposed},
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
