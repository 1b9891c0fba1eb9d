"""MCU deployment bench: int8 models bit-exact in TFLite Micro and on an emulated Cortex-M4.

For every task family: meta-train the default architecture briefly (ridge head re-fit, as the
devices adapt), quantize it, build it with arm-none-eabi-gcc and check the Python int8
reference against TFLite Micro's interpreter and against QEMU's mps2-an386 on >= 1,000 test
vectors (realistic inputs plus random int8 corners); measure flash and RAM from the ELF and
instructions per inference under QEMU. Then prune (unstructured, structured) and distill into
smaller students; every variant is rebuilt, re-checked for bit-exactness and scored on the same
held-out tasks as the baseline (head re-fit on 5 shots per class / 10 shots, int8 body).

Last stdout line: one JSON object, with per-family keys ``bit_exact_tflm``, ``bit_exact_qemu``,
``flash_bytes``, ``ram_bytes``, ``instructions_per_inference`` and the ``pruned`` and
``distilled`` tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from chainml.errors import ConfigError
from chainml.mcu import distill, evaluate, prune
from chainml.mcu.export import (
    CALIBRATION_SEED,
    TEST_SEED,
    check_adaptation,
    check_bit_exact,
    deploy,
    family_inputs,
    test_vectors,
)
from chainml.mcu.graph import Graph, from_params
from chainml.mcu.qemu import build_plugin
from chainml.meta import AdaptConfig, MAMLConfig, TaskSampling, train_maml
from chainml.meta.models import ARCHITECTURES, get_model
from chainml.meta.tasks import FAMILIES, TaskFamily, get_family

FLASH_LIMIT = 64 * 1024
RAM_LIMIT = 16 * 1024
COMPRESSED_FLASH_RATIO = 0.5
MAX_ACC_LOSS = 0.02
MAX_MSE_LOSS = 0.10


def deployable_arch(family: TaskFamily) -> str | None:
    """The family's default architecture if it has int8 kernels, else its registered MLP
    variant (e.g. ``mlp-gasdrift`` beside a spiking default), else None."""
    for arch_id in (family.default_arch, f"mlp-{family.name}"):
        if arch_id not in ARCHITECTURES:
            continue
        try:
            from_params(arch_id, get_model(arch_id).init(0), family.kind)
        except ConfigError:
            continue
        return arch_id
    return None


def train(family: TaskFamily, arch_id: str, iterations: int) -> Graph:
    """Brief meta-training with the ridge head re-fit (the devices' adaptation step)."""
    classify = family.kind == "classification"
    cfg = MAMLConfig(
        iterations=iterations,
        meta_lr=3e-3,
        adapt=AdaptConfig(steps=0, head_refit="ridge"),
        sampling=TaskSampling(meta_batch=16, shots=5 if classify else 10, queries=10, seed=1),
    )
    result = train_maml(family, arch_id, cfg)
    return from_params(arch_id, result.params, family.kind)


def measure(
    graph: Graph, family: TaskFamily, work: Path, plugin: Path, es: evaluate.EvalSet,
    n_test: int,
) -> dict[str, Any]:  # fmt: skip
    calibration = family_inputs(family, graph, "train", 512, CALIBRATION_SEED)
    dep = deploy(graph, calibration, work / graph.name)
    realistic = family_inputs(family, graph, "eval", n_test, TEST_SEED)
    checks = check_bit_exact(dep, test_vectors(dep.model, realistic, 24, TEST_SEED), plugin=plugin)
    adapt = check_adaptation(dep, family)
    fp = dep.footprint
    return {
        "bit_exact_tflm": checks["bit_exact_tflm"],
        "bit_exact_qemu": checks["bit_exact_qemu"],
        "vectors": checks["vectors"],
        "flash_bytes": fp.flash_bytes,
        "ram_bytes": fp.ram_bytes,
        "model_flash_bytes": fp.model_flash,
        "instructions_per_inference": checks["instructions_per_inference"],
        "weights": graph.num_weights,
        "nonzero_weights": prune.nonzero_weights(graph),
        "tflite_bytes": len(dep.tflite),
        "metric": evaluate.score_int8(dep.model, es),
        "adapt": {k.removeprefix("adapt_"): v for k, v in adapt.items()},
    }


def variant_row(row: dict[str, Any], base: dict[str, Any], kind: str) -> dict[str, Any]:
    ratio = row["flash_bytes"] / base["flash_bytes"]
    loss = evaluate.relative_loss(kind, base["metric"], row["metric"])
    limit = MAX_ACC_LOSS if kind == "classification" else MAX_MSE_LOSS
    return {
        **{k: row[k] for k in ("flash_bytes", "ram_bytes", "weights", "nonzero_weights",
                                "instructions_per_inference", "metric", "bit_exact_tflm",
                                "bit_exact_qemu")},
        "flash_ratio": round(ratio, 3),
        "loss_vs_int8": round(loss, 4),
        "meets_target": bool(ratio <= COMPRESSED_FLASH_RATIO and loss <= limit),
    }  # fmt: skip


def bench_family(name: str, args: argparse.Namespace, work: Path, plugin: Path) -> dict[str, Any]:
    family = get_family(name)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    arch_id = deployable_arch(family)
    if arch_id is None:
        return {"supported": False, "reason": f"{family.default_arch} has no int8 MCU kernels"}
    trained = train(family, arch_id, args.iterations)
    inputs = family_inputs(family, trained, "train", args.distill_inputs, 0)
    # The baseline gets the same fine-tuning schedule as every compressed variant (task loss
    # plus distillation from itself), so no variant wins merely by training longer.
    graph = distill.distill(trained, trained, inputs, steps=args.steps, family=family)
    es = evaluate.eval_set(family, graph, n_tasks=args.eval_tasks)
    base = measure(graph, family, work, plugin, es, args.vectors)
    metric = "accuracy" if family.kind == "classification" else "mse"
    out: dict[str, Any] = {
        **{k: base[k] for k in ("bit_exact_tflm", "bit_exact_qemu", "vectors", "flash_bytes",
                                 "ram_bytes", "model_flash_bytes", "instructions_per_inference",
                                 "tflite_bytes", "adapt")},
        "arch_id": arch_id,
        "metric": metric,
        "float": round(evaluate.score_float(graph, es), 4),
        "int8": round(base["metric"], 4),
    }  # fmt: skip
    pruned: dict[str, Any] = {}
    for sparsity in (0.5, 0.8):
        g, masks = prune.unstructured(graph, sparsity)
        g = distill.distill(
            graph, g, inputs, steps=args.steps, masks=masks, name=g.name, family=family
        )
        pruned[f"unstructured-{sparsity:g}"] = variant_row(
            measure(g, family, work, plugin, es, args.vectors), base, family.kind
        )
    for keep in (0.5, 0.35):
        g = prune.structured(graph, keep)
        g = distill.distill(graph, g, inputs, steps=args.steps, name=g.name, family=family)
        pruned[f"structured-{keep:g}"] = variant_row(
            measure(g, family, work, plugin, es, args.vectors), base, family.kind
        )
    distilled: dict[str, Any] = {}
    for fraction in (0.5, 0.35):
        pupil = distill.student(graph, fraction)
        g = distill.distill(graph, pupil, inputs, steps=args.steps, family=family)
        distilled[f"student-{fraction:g}"] = variant_row(
            measure(g, family, work, plugin, es, args.vectors), base, family.kind
        )
    out["pruned"] = pruned
    out["distilled"] = distilled
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--iterations", type=int, default=300, help="meta-training iterations")
    parser.add_argument("--steps", type=int, default=1500, help="fine-tune/distillation steps")
    parser.add_argument("--vectors", type=int, default=1000, help="realistic test vectors")
    parser.add_argument("--eval-tasks", type=int, default=300)
    parser.add_argument("--distill-inputs", type=int, default=8192)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="chainml-bench-mcu-") as tmp:
        work = Path(tmp)
        plugin = build_plugin(work / "plugin")
        for name in args.families.split(","):
            result[name] = bench_family(name, args, work, plugin)
            print(f"{name}: {json.dumps(result[name])}", file=sys.stderr, flush=True)
    fams = {k: v for k, v in result.items() if v.get("supported", True)}
    rows = [r for v in fams.values() for t in ("pruned", "distilled") for r in v[t].values()]
    result["targets"] = {"flash_bytes": FLASH_LIMIT, "ram_bytes": RAM_LIMIT}
    result["pass"] = {
        "bit_exact_everywhere": all(
            r["bit_exact_tflm"] and r["bit_exact_qemu"] for r in [*fams.values(), *rows]
        ),
        "c_head_refit_matches_reference": all(v["adapt"]["matches"] for v in fams.values()),
        "every_family_fits_64k_flash_16k_ram": all(
            v["flash_bytes"] <= FLASH_LIMIT and v["ram_bytes"] <= RAM_LIMIT for v in fams.values()
        ),
        "compressed_half_flash_small_loss": {
            k: any(r["meets_target"] for t in ("pruned", "distilled") for r in v[t].values())
            for k, v in fams.items()
        },
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
