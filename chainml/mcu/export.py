"""The export pipeline: a ledger version -> verified weights -> int8 artifacts -> store + chain.

:func:`deploy` turns a float graph into every artifact (``model.tflite``, ``chainml_model.c/.h``,
the firmware and QEMU harness ELFs) and checks the Python int8 reference against TFLite Micro
and against the Cortex-M4 build under QEMU on test vectors. :func:`export_version` adds the
provenance: it reads the version's weights CID from the ledger, fetches and verifies the bytes
from the store, stores the artifact bundle (one deterministic tar, one CID) and records that CID
beside the version on chain (``Ledger.record_artifact``).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainml.errors import ConfigError, IntegrityError
from chainml.mcu import armbuild, qemu
from chainml.mcu.codegen import generate
from chainml.mcu.graph import Graph, from_params, to_channels_last
from chainml.mcu.int8 import Int8Model, run
from chainml.mcu.ptq import quantize_graph
from chainml.mcu.tflite import tflm_run, to_tflite
from chainml.meta.tasks import FAMILIES, TaskFamily, get_family

TARGETS: dict[str, str] = {
    "cortex-m4": "Arm Cortex-M4 (QEMU mps2-an386), int8, TFLM double rounding"
}
BUNDLE_FORMAT = "chainml.mcu-bundle.v1"
MANIFEST = "manifest.json"
BUNDLE_FILES = (
    "model.tflite", "chainml_model.c", "chainml_model.h", "firmware.elf", "harness.elf",
    "adapt.elf",
)  # fmt: skip
CALIBRATION_SEED = 7
TEST_SEED = 11


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; supported: {', '.join(sorted(TARGETS))}")


def check_toolchain() -> None:
    """Fail early, in one line, when the cross compiler or QEMU is missing."""
    armbuild.tool(armbuild.GCC)
    armbuild.tool(armbuild.SIZE)
    qemu.qemu_binary()


def family_for_arch(arch_id: str) -> TaskFamily:
    for name in FAMILIES:
        family = get_family(name)
        if family.default_arch == arch_id:
            return family
    raise ConfigError(f"no task family uses architecture {arch_id!r}; cannot calibrate it")


def family_inputs(family: TaskFamily, graph: Graph, split: str, n: int, seed: int) -> np.ndarray:
    """``n`` inputs (channels last) from tasks of ``split``, for calibration or testing."""
    per_task = 10
    n_tasks = -(-n // (per_task * max(family.n_way, 1)))
    ep = family.episodes(seed, range(n_tasks), split, per_task, 1)  # type: ignore[arg-type]
    x = ep.x_support.reshape(-1, *ep.x_support.shape[2:])
    return to_channels_last(graph, x)[:n]


def test_vectors(model: Int8Model, realistic: np.ndarray, n_random: int, seed: int) -> np.ndarray:
    """Quantized realistic inputs plus uniformly random int8 vectors (saturation corners)."""
    rng = np.random.default_rng(seed)
    rand = rng.integers(-128, 128, size=(n_random, *model.input_shape)).astype(np.int8)
    return np.concatenate([model.quantize_input(realistic), rand])


@dataclass
class Deployment:
    """Every artifact of one model for one target, plus what was measured about it."""

    model: Int8Model
    tflite: bytes
    build: armbuild.Build
    out_dir: Path
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def footprint(self) -> armbuild.Footprint:
        return self.build.footprint


def deploy(graph: Graph, calibration: np.ndarray, out_dir: Path) -> Deployment:
    """Quantize ``graph`` and write + build every artifact into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = quantize_graph(graph, calibration)
    tfl = to_tflite(model)
    (out_dir / "model.tflite").write_bytes(tfl)
    built = armbuild.build(generate(model), out_dir)
    return Deployment(model, tfl, built, out_dir)


def check_bit_exact(
    dep: Deployment, x: np.ndarray, *, plugin: Path | None = None, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Compare the int8 reference with TFLM and with the Cortex-M4 build on vectors ``x``."""
    ref = run(dep.model, x)
    tflm = tflm_run(dep.tflite, x)
    emu = qemu.run_harness(dep.build.harness, x, dep.model.output_dim, timeout_s=timeout_s)
    checks: dict[str, Any] = {
        "vectors": len(x),
        "bit_exact_tflm": bool(np.array_equal(ref, tflm)),
        "bit_exact_qemu": bool(np.array_equal(ref, emu.outputs)),
        "mismatches_tflm": int((ref != tflm).any(axis=1).sum()),
        "mismatches_qemu": int((ref != emu.outputs).any(axis=1).sum()),
        "distinct_outputs": len(np.unique(ref)),
    }
    if plugin is not None:
        n = min(len(x), 200)
        checks["instructions_per_inference"] = round(
            qemu.instructions_per_inference(
                dep.build.harness, x[:n], dep.model.output_dim, plugin, timeout_s
            ),
            1,
        )
    dep.checks.update(checks)
    return checks


def check_adaptation(dep: Deployment, family: TaskFamily, n_tasks: int = 20) -> dict[str, Any]:
    """The C head re-fit under QEMU against the float64 ridge on the reference's features."""
    from chainml.mcu import evaluate

    es = evaluate.eval_set(family, _graph_shape(dep), n_tasks=n_tasks, seed=TEST_SEED)

    def q(x: np.ndarray) -> np.ndarray:
        flat = dep.model.quantize_input(x.reshape(-1, *dep.model.input_shape))
        return flat.reshape(*x.shape[:2], *dep.model.input_shape)

    if es.kind == "classification":
        targets = (es.y_support[..., None] == np.arange(es.n_out)).astype(np.float32)
    else:
        targets = es.y_support.reshape(*es.y_support.shape[:2], -1).astype(np.float32)
    pred = qemu.run_adapt(
        dep.build.adapt, q(es.x_support), targets, q(es.x_query), evaluate.RIDGE_LAMBDA
    )
    ref = evaluate.ridge_predict(
        evaluate.int8_features(dep.model, es.x_support), es.y_support,
        evaluate.int8_features(dep.model, es.x_query), es.kind, es.n_out,
    )  # fmt: skip
    err = float(np.abs(pred - ref).max() / (1.0 + np.abs(ref).max()))
    fp = dep.build.adapt_footprint
    checks = {
        "adapt_tasks": n_tasks,
        "adapt_max_rel_error": err,
        "adapt_matches": bool(err < 1e-3),
        "adapt_flash_bytes": fp.flash_bytes,
        "adapt_ram_bytes": fp.ram_bytes,
    }
    dep.checks.update(checks)
    return checks


def _graph_shape(dep: Deployment) -> Graph:
    """A weightless graph with the model's input layout (what ``eval_set`` needs)."""
    return Graph(dep.model.name, dep.model.input_shape, (), dep.model.task_kind)


def manifest(dep: Deployment, extra: dict[str, Any]) -> dict[str, Any]:
    m = dep.model
    return {
        "format": BUNDLE_FORMAT,
        "model": m.name,
        "input_shape": list(m.input_shape),
        "input_scale": m.input_scale,
        "input_zero_point": m.input_zp,
        "output_scale": m.output_scale,
        "output_zero_point": m.output_zp,
        "rounding": "tflm-double-rounding",
        "footprint": dep.footprint.as_dict(),
        "toolchain": dep.build.gcc_version,
        "checks": dep.checks,
        **extra,
    }


def bundle_bytes(out_dir: Path, files: tuple[str, ...]) -> bytes:
    """A deterministic tar (sorted names, zero times and owners) of ``files`` in ``out_dir``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = (out_dir / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True)
class ExportResult:
    version: int
    weights_cid: str
    artifact_cid: str
    recorded: bool
    out_dir: Path
    manifest: dict[str, Any]


def export_version(
    ledger: Any,
    store: Any,
    version: int,
    target: str,
    out_dir: Path,
    *,
    sender: str | None = None,
    n_test: int = 1000,
    n_random: int = 24,
    compress: Callable[[Graph, TaskFamily], Graph] | None = None,
) -> ExportResult:
    """Export ledger version ``version`` for ``target`` into ``out_dir``; store and record it."""
    from chainml.protocol.payloads import decode_weights, weights_arch
    from chainml.storage.cid import onchain_to_str

    check_target(target)
    check_toolchain()
    latest = ledger.current_version()
    if not 0 <= version <= latest:
        raise ConfigError(f"unknown version {version}; the ledger has versions 0..{latest}")
    weights_cid = onchain_to_str(*ledger.version(version).weights)
    data = store.get(weights_cid)  # verified against the CID by the store
    arch_id = weights_arch(data)
    params = decode_weights(data, arch_id)
    family = family_for_arch(arch_id)
    graph = from_params(arch_id, params, family.kind)
    if compress is not None:
        graph = compress(graph, family)
    calibration = family_inputs(family, graph, "train", 512, CALIBRATION_SEED)
    dep = deploy(graph, calibration, out_dir)
    realistic = family_inputs(family, graph, "eval", n_test, TEST_SEED)
    checks = check_bit_exact(dep, test_vectors(dep.model, realistic, n_random, TEST_SEED))
    if not (checks["bit_exact_tflm"] and checks["bit_exact_qemu"]):
        raise IntegrityError(
            f"version {version} is not bit-exact: {checks['mismatches_tflm']} TFLM and "
            f"{checks['mismatches_qemu']} QEMU mismatches of {checks['vectors']} vectors"
        )
    adapt = check_adaptation(dep, family)
    if not adapt["adapt_matches"]:
        raise IntegrityError(
            f"the C head re-fit of version {version} is off by {adapt['adapt_max_rel_error']:.2e}"
        )
    info = manifest(
        dep,
        {"version": version, "weights_cid": weights_cid, "arch_id": arch_id, "family": family.name,
         "target": target},
    )  # fmt: skip
    (out_dir / MANIFEST).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    artifact = str(store.put(bundle_bytes(out_dir, (*BUNDLE_FILES, MANIFEST))))
    (out_dir / "artifact.cid").write_text(artifact + "\n")
    recorded = False
    if hasattr(ledger, "record_artifact"):
        who = sender or ledger.w3.eth.accounts[0]
        ledger.record_artifact(version, artifact, target, who)
        recorded = True
    return ExportResult(version, weights_cid, artifact, recorded, out_dir, info)


def compressor(
    spec: str, *, steps: int = 1500, seed: int = 0
) -> Callable[[Graph, TaskFamily], Graph]:
    """A compression step from its spec: ``unstructured:S``, ``structured:F`` or
    ``distill:F`` (sparsity S, kept or student width fraction F), fine-tuned or trained by
    distillation from the exported model on the family's unlabelled training inputs."""
    from chainml.mcu import distill, prune

    kind, _, value = spec.partition(":")
    try:
        amount = float(value)
    except ValueError:
        raise ConfigError(f"compression {spec!r} must look like structured:0.5") from None
    if kind not in ("unstructured", "structured", "distill"):
        raise ConfigError(f"unknown compression {kind!r}; use unstructured, structured or distill")

    def apply(graph: Graph, family: TaskFamily) -> Graph:
        inputs = family_inputs(family, graph, "train", 8192, seed)
        if kind == "unstructured":
            pruned, masks = prune.unstructured(graph, amount)
            return distill.distill(
                graph, pruned, inputs, steps=steps, seed=seed, masks=masks, name=pruned.name
            )
        if kind == "structured":
            pruned = prune.structured(graph, amount)
            return distill.distill(graph, pruned, inputs, steps=steps, seed=seed, name=pruned.name)
        pupil = distill.student(graph, amount, seed)
        return distill.distill(graph, pupil, inputs, steps=steps, seed=seed)

    return apply
