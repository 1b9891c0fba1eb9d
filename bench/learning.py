"""Does the fleet learn through the ledger? The real protocol, end to end, on sine.

A fresh Anvil chain and embedded store; the swarm harness (the code `make demo` runs) with
signed commitments in batched mode, the aggregator, the validators' recomputation and votes;
then `verify` over every version. The final version is scored under both protocols
(:mod:`chainml.meta.protocols`, 1,000 fresh tasks), beside centralized MAML trained in this run on
the same tasks with the same number of task episodes. Then meter, vibration, coldchain and
digits each go through the swarm too, against from-scratch and FedAvg initialisations under the
device protocol. Prints tables, then one JSON object as the last line.

    python bench/learning.py [--nodes 50] [--rounds 500] [--workers 2] [--out DIR]
                             [--families meter,vibration,coldchain,digits]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.cli.swarm_cmd import run_swarm
from chainml.meta.federated import simulate_federated
from chainml.meta.maml import MAMLConfig, train_maml
from chainml.meta.models import get_model
from chainml.meta.protocols import device_curve, score
from chainml.meta.sparse import dense_update_bytes
from chainml.meta.tasks import get_family
from chainml.meta.training import TaskSampling
from chainml.protocol.payloads import VersionFile, decode_version
from chainml.protocol.verify import verify_history
from chainml.services.chain import LocalChain
from chainml.storage.store import open_store
from chainml.storage.tensors import encode_tensors, make_metadata
from chainml.swarm.config import SwarmConfig
from chainml.swarm.node_job import COMMITMENT_WIRE_BYTES

FAMILY_TABLE = ("meter", "vibration", "coldchain", "digits")
TARGETS = {"maml_protocol_mse_10": 0.40, "device_protocol_mse": 0.10, "compression": 10.0}


def node_rows(run_dir: Path) -> list[dict[str, Any]]:
    with (run_dir / "nodes.jsonl").open() as f:
        return [json.loads(line) for line in f if line.strip()]


def update_bytes(store: Any, ledger: Ledger, rounds: list[dict[str, Any]]) -> list[int]:
    """Sizes of the update blocks actually stored, read back from the store by CID."""
    from chainml.protocol.evidence import gather_round

    sizes = []
    for row in rounds[-3:]:  # a sample of recent rounds: every update has the same layout
        evidence = gather_round(ledger, store, row["round"], 0)
        sizes += [len(store.get(u.update_cid)) for u in evidence.updates]
    return sizes


def centralized_maml(nodes: int, episodes: int, seed: int) -> dict[str, Any]:
    """MAML (Finn et al.), trained in-process on the swarm's ``nodes`` train tasks with as many
    task episodes as the swarm used, scored with the same protocol on the same held-out tasks."""
    family = get_family("sine")
    recipe = SwarmConfig().recipe()
    batch = min(25, nodes)
    config = MAMLConfig(  # Finn et al.'s settings: one inner step, meta lr 1e-3, batch 25
        iterations=max(1, episodes // batch),
        sampling=TaskSampling(
            meta_batch=batch,
            shots=recipe.support_shots,
            queries=recipe.query_shots,
            population=nodes,
            seed=seed,
        ),
    )
    start = time.perf_counter()
    result = train_maml(family, "mlp-sine", config)
    scores = score(result.params, family, recipe, seed=seed)
    return {
        "iterations": config.iterations,
        "mse": {str(k): v for k, v in scores.maml.items()},
        "train_s": round(time.perf_counter() - start, 1),
    }


@dataclass
class SwarmRun:
    rows: list[dict[str, Any]]
    final: VersionFile
    verify_ok: bool
    verify_s: float
    update_sizes: list[int]
    nodes: list[dict[str, Any]]
    wall_s: float


def run_on_fresh_chain(config: SwarmConfig, workers: int) -> SwarmRun:
    """The swarm harness on a fresh Anvil and embedded store, then ``verify`` of every version."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chainml-bench-learning-") as tmp:
        data_dir = Path(tmp)
        chain = LocalChain(data_dir)
        info = chain.up()
        try:
            run_dir = data_dir / "run"
            rows = run_swarm(
                config,
                data_dir=data_dir,
                run_dir=run_dir,
                rpc_url=info.url,
                ipfs="embedded",
                workers=workers,
                show_progress=False,
            )
            deployments = load_deployments(deployments_path(data_dir))
            assert deployments is not None
            ledger = Ledger.from_deployments(Web3(Web3.HTTPProvider(info.url)), deployments)
            store = open_store("embedded", data_dir)
            t0 = time.perf_counter()
            checks = verify_history(ledger, store, deployments.block_number)
            verify_s = time.perf_counter() - t0
            finalized = [r for r in rows if r["status"] == "finalized"]
            return SwarmRun(
                rows=rows,
                final=decode_version(store.get(finalized[-1]["aggregate_cid"])),
                verify_ok=bool(checks) and all(c.ok for c in checks),
                verify_s=verify_s,
                update_sizes=update_bytes(store, ledger, finalized),
                nodes=node_rows(run_dir),
                wall_s=time.perf_counter() - started,
            )
        finally:
            chain.down()


def family_table(name: str, nodes: int, rounds: int, workers: int, seed: int) -> dict[str, Any]:
    """One task family through the swarm against a from-scratch init and a FedAvg init (the same
    pipeline with no inner loop and no head re-fit term: plain federated training), under the
    device protocol after 5 and 10 online steps, on the same held-out tasks."""
    config = SwarmConfig(
        nodes=nodes, rounds=rounds, task=name, seed=seed, mode="batched", eval_tasks=100
    )
    run = run_on_fresh_chain(config, workers)
    family = get_family(name)
    recipe = run.final.recipe
    arch = run.final.arch_id
    fedavg_recipe = replace(recipe, inner_steps=0, ridge_weight=0.0)
    inits = {
        "swarm": run.final.params,
        "fedavg": simulate_federated(
            family, arch, fedavg_recipe, rounds=rounds, nodes=nodes, seed=seed
        ).params,
        "scratch": get_model(arch).init(seed + 1_000_003),
    }
    classify = family.kind == "classification"
    out: dict[str, Any] = {"metric": "accuracy" if classify else "loss", "verify_ok": run.verify_ok}
    for label, params in inits.items():
        curve = device_curve(params, family, recipe, n_tasks=300, seed=seed, steps=(0, 5, 10))
        out[label] = {str(k): (v[2] if classify else v[0]) for k, v in curve.items()}
    better = (lambda a, b: a > b) if classify else (lambda a, b: a < b)
    out["swarm_beats_both"] = {
        k: better(out["swarm"][k], out["fedavg"][k]) and better(out["swarm"][k], out["scratch"][k])
        for k in ("5", "10")
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family-nodes", type=int, default=20)
    parser.add_argument("--family-rounds", type=int, default=40)
    parser.add_argument("--families", default=",".join(FAMILY_TABLE), help="'' to skip")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    config = SwarmConfig(nodes=args.nodes, rounds=args.rounds, seed=args.seed, mode="batched")
    family = get_family("sine")
    run = run_on_fresh_chain(config, args.workers)
    rows, final, nodes = run.rows, run.final, run.nodes
    finalized = [r for r in rows if r["status"] == "finalized"]
    args.out.mkdir(parents=True, exist_ok=True)
    weights_file = (args.out / "learning-final.safetensors").resolve()
    arrays = {k: v.numpy() for k, v in final.params.items()}
    weights_file.write_bytes(encode_tensors(arrays, make_metadata(final.arch_id)))
    scores = score(final.params, family, final.recipe, seed=args.seed)
    updates = sum(r["status"] == "included" for r in nodes)
    cumulative, reached = 0, None
    for r in finalized:
        cumulative += r["included"]
        if reached is None and r["heldout"]["device"]["mean"] <= 0.5:
            reached = cumulative
    counted = [r for r in nodes if r["status"] in ("included", "excluded")]
    excluded_share = sum(r["status"] == "excluded" for r in counted) / max(len(counted), 1)
    payload = float(np.mean(run.update_sizes)) + COMMITMENT_WIRE_BYTES
    dense = dense_update_bytes(final.arch_id)
    central = centralized_maml(args.nodes, updates, args.seed)
    families = {
        name: family_table(name, args.family_nodes, args.family_rounds, args.workers, args.seed)
        for name in filter(None, args.families.split(","))
    }
    verify_ok = run.verify_ok
    result = {
        "nodes": args.nodes,
        "rounds": args.rounds,
        "finalized": len(finalized),
        "maml_protocol_mse": {str(k): round(v, 4) for k, v in scores.maml.items()},
        "maml_protocol_ci95": {str(k): round(v, 4) for k, v in scores.maml_ci95.items()},
        "device_protocol_mse": round(scores.device, 4),
        "device_protocol_ci95": round(scores.device_ci95, 4),
        "centralized_maml_mse_10": round(central["mse"]["10"], 4),
        "centralized_maml": central,
        "node_updates": updates,
        "node_updates_to_device_mse_0_5": reached,
        "payload_bytes_per_node_round": round(payload, 1),
        "update_bytes_on_ipfs": round(float(np.mean(run.update_sizes)), 1),
        "commitment_wire_bytes": COMMITMENT_WIRE_BYTES,
        "dense_fp32_bytes_per_node_round": dense,
        "compression": round(dense / payload, 2),
        "honest_excluded_fraction": round(excluded_share, 5),
        "recipe": final.recipe.to_json(),
        "final_weights_file": str(weights_file),
        "verify_ok": verify_ok,
        "verify_s": round(run.verify_s, 1),
        "swarm_s": round(run.wall_s, 1),
        "families": families,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    result["targets"] = {
        "maml_protocol_mse_10": {
            "value": result["maml_protocol_mse"]["10"],
            "target": TARGETS["maml_protocol_mse_10"],
            "pass": result["maml_protocol_mse"]["10"] <= TARGETS["maml_protocol_mse_10"],
        },
        "device_protocol_mse": {
            "value": result["device_protocol_mse"],
            "target": TARGETS["device_protocol_mse"],
            "pass": result["device_protocol_mse"] <= TARGETS["device_protocol_mse"],
        },
        "compression": {
            "value": result["compression"],
            "target": TARGETS["compression"],
            "pass": result["compression"] >= TARGETS["compression"],
        },
        "wall_s": {"value": result["wall_s"], "target": 3600, "pass": result["wall_s"] <= 3600},
        "verify_ok": {"value": verify_ok, "target": True, "pass": verify_ok},
        "families_beat_scratch_and_fedavg": {
            "value": {n: f["swarm_beats_both"] for n, f in families.items()},
            "pass": all(all(f["swarm_beats_both"].values()) for f in families.values()),
        },
    }
    print(f"{'':28}{'0':>8}{'1':>8}{'5':>8}{'10':>8}")
    print(f"{'swarm, MAML protocol':28}" + "".join(f"{scores.maml[k]:8.3f}" for k in (0, 1, 5, 10)))
    print(
        f"{'centralized MAML':28}"
        + "".join(f"{central['mse'][str(k)]:8.3f}" for k in (0, 1, 5, 10))
    )
    print(f"swarm, device protocol: {scores.device:.4f} ± {scores.device_ci95:.4f}")
    print(f"payload {payload:.0f} B/node/round vs dense fp32 {dense} B ({dense / payload:.1f}x)")
    if families:
        print(f"\n{'family':12}{'init':9}{'metric':10}{'k=0':>9}{'k=5':>9}{'k=10':>9}")
        for name, f in families.items():
            for label in ("swarm", "fedavg", "scratch"):
                cells = "".join(f"{f[label][k]:9.3f}" for k in ("0", "5", "10"))
                print(f"{name:12}{label:9}{f['metric']:10}{cells}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
