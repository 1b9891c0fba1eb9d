"""Meta-learning engine benchmark: one command, human-readable tables, JSON on the last line.

    python bench/meta.py            # the full run (well under 30 minutes on 2 cores)
    python bench/meta.py --quick    # a smoke run with tiny budgets (targets are not expected)

Sections: model footprints; sine 5-shot MAML reproduction against Finn et al. (2017, App. C,
Table 2) with the pretrained baseline; the swarm's federated recipe (``simulate_federated``: the
same node step, aggregation rule and server step as the swarm) with top-10% int8 updates, side
by side with centralised MAML; each sensor family and digits (meta-learned vs
from-scratch vs FedAvg/pretrained initialisations); wall times and node-step cost. The sections
run in two worker processes (one per core), each with one torch thread: the models are tiny,
so intra-op threading only adds overhead.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

STEPS = (0, 1, 5, 10)
PAPER_MAML = {1: 0.67, 5: 0.38, 10: 0.35}
PAPER_PRETRAINED = {1: 2.41, 5: 2.23, 10: 2.19}
BAND = 0.15
FED_TARGET_MSE10 = 0.50
FED_TARGET_DEVICE = 0.10
FED_TARGET_COMPRESSION = 10.0


@dataclass(frozen=True)
class Budget:
    maml_iterations: int
    joint_iterations: int
    fed_rounds: int
    fed_nodes: int
    family_iterations: int
    eval_tasks: int
    family_eval_tasks: int


FULL = Budget(20_000, 10_000, 1_000, 50, 2_000, 1_000, 300)
QUICK = Budget(200, 100, 20, 10, 40, 100, 100)


def _setup() -> None:
    import torch

    torch.set_num_threads(1)


def _eval_dict(res: Any) -> dict[str, Any]:
    return {
        str(r.steps): {
            "loss": r.loss_mean,
            "loss_ci95": r.loss_ci95,
            **({"acc": r.acc_mean, "acc_ci95": r.acc_ci95} if r.acc_mean is not None else {}),
        }
        for r in res.results
    }


def job_models() -> dict[str, Any]:
    from chainml.meta.models import ARCHITECTURES, MCU_FLASH_BYTES, MCU_RAM_BYTES, model_spec

    out = {}
    for arch_id in ARCHITECTURES:
        s = model_spec(arch_id)
        out[arch_id] = {
            "params": s.num_params,
            "head_params": s.num_params - s.body_size,
            "flash_int8_bytes": s.flash_bytes_int8,
            "ram_inference_bytes": s.ram_inference_bytes,
            "ram_adapt_step_bytes_batch1": s.ram_adapt_bytes(1),
            "ram_adapt_step_bytes_batch10": s.ram_adapt_bytes(10),
            "fits_cortex_m4": s.flash_bytes_int8 <= MCU_FLASH_BYTES
            and max(s.ram_inference_bytes, s.ram_adapt_bytes(10)) <= MCU_RAM_BYTES,
        }
    return out


def job_sine_maml(b: Budget) -> dict[str, Any]:
    _setup()
    from chainml.meta.adapt import AdaptConfig
    from chainml.meta.evaluate import evaluate
    from chainml.meta.maml import MAMLConfig, train_joint, train_maml
    from chainml.meta.tasks import get_family
    from chainml.meta.training import TaskSampling

    fam = get_family("sine")
    sampling = TaskSampling(meta_batch=25, shots=10, queries=10, seed=0)
    cfg = MAMLConfig(
        iterations=b.maml_iterations,
        meta_lr=1e-3,
        adapt=AdaptConfig(steps=1, inner_lr=0.01),
        sampling=sampling,
    )
    maml = train_maml(fam, "mlp-sine", cfg)
    joint = train_joint(fam, "mlp-sine", replace(cfg, iterations=b.joint_iterations))
    test = AdaptConfig(inner_lr=0.01)
    out: dict[str, Any] = {
        "maml_iterations": b.maml_iterations,
        "maml_train_s": maml.wall_time_s,
        "pretrained_iterations": b.joint_iterations,
        "pretrained_train_s": joint.wall_time_s,
        "meta_batch": 25,
        "eval_tasks": b.eval_tasks,
    }
    for name, params in (("maml", maml.params), ("pretrained", joint.params)):
        for q in (False, True):
            res = evaluate(
                params,
                fam,
                n_tasks=b.eval_tasks,
                shots=5,
                steps=STEPS,
                adapt_config=test,
                quantized=q,
            )
            out[f"{name}{'_int8' if q else ''}"] = _eval_dict(res)
    return out


def job_sine_federated(b: Budget) -> dict[str, Any]:
    """The swarm's recipe, run in-process: the same node step, aggregation rule and server
    step (``simulate_federated``), scored by both protocols; bytes are real wire bytes."""
    _setup()
    from chainml.aggregate.strategies import Contribution, strategy_for_recipe
    from chainml.meta.evaluate import evaluate
    from chainml.meta.federated import simulate_federated
    from chainml.meta.protocols import MAML_INNER_LR, MAML_SHOTS, score
    from chainml.meta.tasks import get_family
    from chainml.swarm.config import SwarmConfig
    from chainml.swarm.node_job import COMMITMENT_WIRE_BYTES

    fam = get_family("sine")
    recipe = SwarmConfig().recipe()
    rule = strategy_for_recipe(recipe)

    def aggregate(dense: list[Any], counts: list[int]) -> Any:
        pairs = enumerate(zip(dense, counts, strict=True))
        contributions = [Contribution(f"0x{i:040x}", d, n) for i, (d, n) in pairs]
        return rule.aggregate(contributions).delta

    res = simulate_federated(
        fam, "mlp-sine", recipe, rounds=b.fed_rounds, nodes=b.fed_nodes, aggregate=aggregate
    )
    payload = res.bytes_per_node_round + COMMITMENT_WIRE_BYTES
    scores = score(res.params, fam, recipe, n_tasks=b.eval_tasks)
    out: dict[str, Any] = {
        "rounds": b.fed_rounds,
        "nodes": b.fed_nodes,
        "recipe": recipe.to_json(),
        "train_s": res.wall_time_s,
        "bytes_per_node_round": payload,
        "update_bytes": res.bytes_per_node_round,
        "commitment_bytes": COMMITMENT_WIRE_BYTES,
        "dense_float32_bytes": res.dense_bytes_per_node_round,
        "compression": res.dense_bytes_per_node_round / payload,
        "device_protocol": scores.device,
        "device_protocol_ci95": scores.device_ci95,
    }
    from chainml.meta.adapt import AdaptConfig

    for q in (False, True):
        ev = evaluate(
            res.params,
            fam,
            n_tasks=b.eval_tasks,
            shots=MAML_SHOTS,
            steps=STEPS,
            adapt_config=AdaptConfig(inner_lr=MAML_INNER_LR),
            quantized=q,
        )
        out["federated" + ("_int8" if q else "")] = _eval_dict(ev)
    return out


# family -> (shots, inner lr, MAML inner steps during meta-training, meta-iterations)
FAMILY_SETTINGS = {
    "meter": (10, 0.02, 5, 2_000),
    "vibration": (5, 0.1, 1, 1_000),
    "coldchain": (5, 0.1, 3, 2_000),
    "digits": (5, 0.2, 3, 1_000),
}


def job_family(name: str, b: Budget) -> dict[str, Any]:
    _setup()
    from chainml.meta.adapt import AdaptConfig
    from chainml.meta.evaluate import evaluate
    from chainml.meta.maml import MAMLConfig, scratch_init, train_joint, train_maml
    from chainml.meta.tasks import get_family
    from chainml.meta.training import TaskSampling

    fam = get_family(name)
    shots, lr, steps, iterations = FAMILY_SETTINGS[name]
    iterations = min(iterations, b.family_iterations)
    cfg = MAMLConfig(
        iterations=iterations,
        meta_lr=1e-3,
        adapt=AdaptConfig(steps=steps, inner_lr=lr),
        sampling=TaskSampling(meta_batch=10, shots=shots, queries=10, seed=0),
    )
    meta = train_maml(fam, fam.default_arch, cfg)
    joint = train_joint(fam, fam.default_arch, cfg)
    inits = {
        "meta": meta.params,
        "fedavg": joint.params,
        "scratch": scratch_init(fam.default_arch, 1),
    }
    test = AdaptConfig(inner_lr=lr)
    out: dict[str, Any] = {
        "arch": fam.default_arch,
        "shots": shots,
        "inner_lr": lr,
        "maml_inner_steps": steps,
        "iterations": iterations,
        "meta_train_s": meta.wall_time_s,
        "fedavg_train_s": joint.wall_time_s,
        "kind": fam.kind,
        "eval_tasks": b.family_eval_tasks,
    }
    for label, params in inits.items():
        res = evaluate(
            params, fam, n_tasks=b.family_eval_tasks, shots=shots, steps=STEPS, adapt_config=test
        )
        out[label] = _eval_dict(res)
    res = evaluate(
        meta.params,
        fam,
        n_tasks=b.family_eval_tasks,
        shots=shots,
        steps=STEPS,
        adapt_config=test,
        quantized=True,
    )
    out["meta_int8"] = _eval_dict(res)
    key = "acc" if fam.kind == "classification" else "loss"
    better = (lambda a, c: a > c) if key == "acc" else (lambda a, c: a < c)
    out["metric"] = key
    out["meta_beats_baselines"] = {
        str(k): all(
            better(out["meta"][str(k)][key], out[o][str(k)][key]) for o in ("fedavg", "scratch")
        )
        for k in (5, 10)
    }
    return out


def job_node_cost() -> dict[str, Any]:
    _setup()
    import statistics

    from chainml.meta.federated import NodeConfig, node_step, node_steps
    from chainml.meta.models import get_model
    from chainml.meta.tasks import get_family

    fam, model = get_family("sine"), get_model("mlp-sine")
    params = model.init(0)
    cfg = NodeConfig(round=1)
    times = []
    for i in range(60):
        t0 = time.perf_counter()
        node_step(model, params, fam.task(0, i), cfg)
        times.append(time.perf_counter() - t0)
    tasks = [fam.task(0, i) for i in range(100)]
    t0 = time.perf_counter()
    node_steps(model, params, tasks, cfg)
    return {
        "recipe": {
            "single_node_ms_median": 1e3 * statistics.median(times[10:]),
            "batched_ms_per_node": 1e3 * (time.perf_counter() - t0) / len(tasks),
        }
    }


def _fmt_row(cells: list[Any], widths: list[int]) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))


def _table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n== {title} ==")
    print(_fmt_row(header, widths))
    print(_fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        print(_fmt_row(r, widths))


def _ms(e: dict[str, Any], k: int, key: str = "loss") -> str:
    r = e[str(k)]
    return f"{r[key]:.3f}±{r[key + '_ci95']:.3f}"


def report(results: dict[str, Any], wall: float, quick: bool) -> dict[str, Any]:
    m = results["models"]
    _table(
        "Tiny models (Cortex-M4: 256 KB RAM, 1 MB flash)",
        ["arch", "params", "flash int8 B", "RAM infer B", "RAM adapt B (b=1)", "(b=10)", "fits"],
        [
            [
                a,
                v["params"],
                v["flash_int8_bytes"],
                v["ram_inference_bytes"],
                v["ram_adapt_step_bytes_batch1"],
                v["ram_adapt_step_bytes_batch10"],
                v["fits_cortex_m4"],
            ]
            for a, v in m.items()
        ],
    )
    s, f = results["sine_maml"], results["sine_federated"]
    rows = []
    for label, e in (
        ("MAML (ours)", s["maml"]),
        ("MAML int8 (ours)", s["maml_int8"]),
        ("pretrained (ours)", s["pretrained"]),
        ("federated (ours)", f["federated"]),
        ("federated int8 (ours)", f["federated_int8"]),
    ):
        rows.append([label] + [_ms(e, k) for k in STEPS])
    rows.append(["MAML (paper)", "-"] + [PAPER_MAML[k] for k in (1, 5, 10)])
    rows.append(["pretrained (paper)", "-"] + [PAPER_PRETRAINED[k] for k in (1, 5, 10)])
    _table("Sine 5-shot MSE after k steps (mean ± 95% CI)", ["model", *map(str, STEPS)], rows)

    checks: dict[str, Any] = {}
    for k in (1, 5, 10):
        got = s["maml"][str(k)]["loss"]
        checks[f"sine_maml_mse_{k}"] = {
            "value": got,
            "target": PAPER_MAML[k],
            "band": [PAPER_MAML[k] * (1 - BAND), PAPER_MAML[k] * (1 + BAND)],
            "pass": abs(got - PAPER_MAML[k]) <= BAND * PAPER_MAML[k],
        }
        got_p = s["pretrained"][str(k)]["loss"]
        checks[f"sine_pretrained_mse_{k}"] = {
            "value": got_p,
            "target": PAPER_PRETRAINED[k],
            "within_15pct": abs(got_p - PAPER_PRETRAINED[k]) <= BAND * PAPER_PRETRAINED[k],
            "maml_beats_pretrained": s["maml"][str(k)]["loss"] < got_p,
        }
    fed10 = f["federated"][str(10)]["loss"]
    checks["federated_mse_10"] = {
        "value": fed10,
        "target_max": FED_TARGET_MSE10,
        "pass": fed10 <= FED_TARGET_MSE10,
    }
    checks["federated_int8_mse_10"] = {
        "value": f["federated_int8"]["10"]["loss"],
        "target_max": FED_TARGET_MSE10,
        "pass": f["federated_int8"]["10"]["loss"] <= FED_TARGET_MSE10,
    }
    checks["federated_device_protocol"] = {
        "value": f["device_protocol"],
        "target_max": FED_TARGET_DEVICE,
        "pass": f["device_protocol"] <= FED_TARGET_DEVICE,
    }
    checks["federated_compression"] = {
        "value": f["compression"],
        "target_min": FED_TARGET_COMPRESSION,
        "bytes_per_node_round": f["bytes_per_node_round"],
        "dense_float32_bytes": f["dense_float32_bytes"],
        "pass": f["compression"] >= FED_TARGET_COMPRESSION,
    }
    _table(
        "Federated vs centralised (sine, 5-shot)",
        ["", "centralised MAML", "federated (TinyMetaFed-style)"],
        [
            ["MSE after 10 steps", _ms(s["maml"], 10), _ms(f["federated"], 10)],
            ["int8 MSE after 10 steps", _ms(s["maml_int8"], 10), _ms(f["federated_int8"], 10)],
            [
                "training",
                f"{s['maml_iterations']} it x 25 tasks",
                f"{f['rounds']} rounds x {f['nodes']} nodes",
            ],
            ["wall time (s)", f"{s['maml_train_s']:.0f}", f"{f['train_s']:.0f}"],
            [
                "bytes / node / round",
                "-",
                f"{f['bytes_per_node_round']:.0f} (dense f32 {f['dense_float32_bytes']}, "
                f"{f['compression']:.1f}x smaller)",
            ],
        ],
    )

    for name in FAMILY_SETTINGS:
        r = results[name]
        key = r["metric"]
        rows = [
            [label] + [_ms(r[label], k, key) for k in STEPS]
            for label in ("meta", "meta_int8", "fedavg", "scratch")
        ]
        title = (
            f"{name} ({r['arch']}, {r['shots']}-shot, lr {r['inner_lr']}): "
            f"{'accuracy' if key == 'acc' else 'MSE'} after k steps"
        )
        _table(title, ["init", *map(str, STEPS)], rows)
        for k in (5, 10):
            checks[f"{name}_meta_beats_baselines_{k}"] = {
                "metric": key,
                "meta": r["meta"][str(k)][key],
                "fedavg": r["fedavg"][str(k)][key],
                "scratch": r["scratch"][str(k)][key],
                "pass": r["meta_beats_baselines"][str(k)],
            }

    nc = results["node_cost"]
    _table(
        "Node step cost (sine MLP, 10 samples)",
        ["rule", "single node ms", "batched ms/node"],
        [
            [k, f"{v['single_node_ms_median']:.2f}", f"{v['batched_ms_per_node']:.2f}"]
            for k, v in nc.items()
        ],
    )
    _table(
        "Wall time (s)",
        ["section", "seconds"],
        [
            ["sine MAML meta-training (vmap, 1 thread)", f"{s['maml_train_s']:.1f}"],
            ["sine pretrained baseline", f"{s['pretrained_train_s']:.1f}"],
            ["sine federated simulation", f"{f['train_s']:.1f}"],
            *[[f"{n} meta-training", f"{results[n]['meta_train_s']:.1f}"] for n in FAMILY_SETTINGS],
            ["whole benchmark (2 processes)", f"{wall:.1f}"],
        ],
    )
    passed = all(v["pass"] for v in checks.values() if "pass" in v)
    return {
        "bench": "meta",
        "mode": "quick" if quick else "full",
        "wall_time_s": wall,
        "all_pass": passed,
        "checks": checks,
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets for a smoke run")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (cores)")
    args = parser.parse_args(argv)
    b = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    node_cost = job_node_cost()  # timed before the workers start, so it is not contended
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        # longest job first so the two cores finish together
        futures = {
            "sine_maml": pool.submit(job_sine_maml, b),
            "sine_federated": pool.submit(job_sine_federated, b),
            **{n: pool.submit(job_family, n, b) for n in FAMILY_SETTINGS},
            "models": pool.submit(job_models),
        }
        results = {k: fut.result() for k, fut in futures.items()}
    results["node_cost"] = node_cost
    summary = report(results, time.perf_counter() - t0, args.quick)
    print(json.dumps(summary, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
