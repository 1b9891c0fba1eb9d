"""Run the harness ELF under ``qemu-system-arm -M mps2-an386`` (a Cortex-M4) and count
instructions.

The harness reads ``vectors.bin`` and writes ``outputs.bin`` in its working directory through
semihosting, so one QEMU run covers thousands of inferences. QEMU is functional, not cycle
accurate: use it for bit-exactness and instruction counts, never for latency.

Instruction counts come from a tiny TCG plugin (built here with the host C compiler against the
documented, stable QEMU plugin API, version 1, declared below because Debian ships no
``qemu-plugin.h``): it adds every executed translation block's instruction count to a counter
and writes the total at exit. Per-inference counts are the difference between a run over N
vectors and one over 0 vectors, divided by N.

Every run has a timeout; ``subprocess.run`` kills QEMU by PID when it expires.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chainml.errors import ToolchainError

QEMU = "qemu-system-arm"
BOARD = "mps2-an386"
SETUP_HINT = "run `make setup` (Debian package qemu-system-arm)"

PLUGIN_SOURCE = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The subset of QEMU's plugin API (include/qemu/qemu-plugin.h, API version 1) used here. */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t, void *);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op,
                                              void *, uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns;
static char outfile[4096];

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                           qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *p) {
  (void)id; (void)p;
  FILE *f = fopen(outfile, "w");
  if (f) { fprintf(f, "%llu\n", (unsigned long long)insns); fclose(f); }
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; ++i)
    if (strncmp(argv[i], "out=", 4) == 0) snprintf(outfile, sizeof outfile, "%s", argv[i] + 4);
  if (!outfile[0]) return -1;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
  qemu_plugin_register_atexit_cb(id, on_exit, NULL);
  return 0;
}
"""


@dataclass(frozen=True)
class QemuRun:
    outputs: np.ndarray
    instructions: int | None
    wall_s: float


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise ToolchainError(f"{QEMU} not found on PATH; {SETUP_HINT}")
    return path


def host_compiler() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise ToolchainError(
            "no host C compiler (gcc) to build the QEMU instruction counter; run `make setup`"
        )
    return cc


def build_plugin(out_dir: Path) -> Path:
    """Compile the instruction-counting plugin with the host C compiler (cached by path)."""
    cc = host_compiler()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / "libchainml_insn.so"
    if lib.exists():
        return lib
    src = out_dir / "chainml_insn.c"
    src.write_text(PLUGIN_SOURCE)
    proc = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ToolchainError(f"building the QEMU plugin failed: {proc.stderr.strip()[-300:]}")
    return lib


def run_harness(
    elf: Path,
    x: np.ndarray,
    output_dim: int,
    *,
    plugin: Path | None = None,
    timeout_s: float = 120.0,
) -> QemuRun:
    """Feed int8 vectors ``x`` (``(N, ...)``) to the harness under QEMU; int8 outputs back."""
    import time

    qemu = qemu_binary()
    x = np.ascontiguousarray(x, dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="chainml-qemu-") as tmp:
        work = Path(tmp)
        (work / "vectors.bin").write_bytes(x.tobytes())
        cmd = [
            qemu, "-M", BOARD, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(Path(elf).resolve()),
        ]  # fmt: skip
        count_file = work / "insns.txt"
        if plugin is not None:
            cmd += ["-plugin", f"{plugin},out={count_file}"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(f"QEMU did not finish within {timeout_s:.0f} s (killed)") from exc
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()[-300:]
            raise ToolchainError(f"QEMU harness exited with code {proc.returncode}: {err}")
        raw = (work / "outputs.bin").read_bytes()
        outputs = np.frombuffer(raw, dtype=np.int8).reshape(len(x), output_dim).copy()
        insns = int(count_file.read_text()) if plugin is not None else None
    return QemuRun(outputs, insns, wall)


def instructions_per_inference(
    elf: Path, x: np.ndarray, output_dim: int, plugin: Path, timeout_s: float = 120.0
) -> float:
    """Mean guest instructions of one inference (harness loop included)."""
    base = run_harness(elf, x[:0], output_dim, plugin=plugin, timeout_s=timeout_s)
    full = run_harness(elf, x, output_dim, plugin=plugin, timeout_s=timeout_s)
    assert base.instructions is not None and full.instructions is not None
    return (full.instructions - base.instructions) / max(len(x), 1)


def run_adapt(
    elf: Path,
    x_support: np.ndarray,
    targets: np.ndarray,
    x_query: np.ndarray,
    ridge_lambda: float,
    *,
    timeout_s: float = 120.0,
) -> np.ndarray:
    """The on-device head re-fit under QEMU: per task, add the int8 support samples with their
    float targets, solve, predict the queries. Returns float32 ``(T, Q, out)``."""
    qemu = qemu_binary()
    t, s = x_support.shape[:2]
    q = x_query.shape[1]
    out_dim = targets.shape[-1]
    blob = [np.array([t, s, q], dtype="<i4").tobytes(), np.float32(ridge_lambda).tobytes()]
    for i in range(t):
        for j in range(s):
            blob.append(np.ascontiguousarray(x_support[i, j], dtype=np.int8).tobytes())
            blob.append(np.ascontiguousarray(targets[i, j], dtype="<f4").tobytes())
        blob.append(np.ascontiguousarray(x_query[i], dtype=np.int8).tobytes())
    with tempfile.TemporaryDirectory(prefix="chainml-qemu-") as tmp:
        work = Path(tmp)
        (work / "adapt.bin").write_bytes(b"".join(blob))
        cmd = [
            qemu, "-M", BOARD, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(Path(elf).resolve()),
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(f"QEMU did not finish within {timeout_s:.0f} s (killed)") from exc
        if proc.returncode != 0:
            raise ToolchainError(f"QEMU adaptation harness exited with code {proc.returncode}")
        raw = (work / "preds.bin").read_bytes()
    return np.frombuffer(raw, dtype="<f4").reshape(t, q, out_dim).copy()
