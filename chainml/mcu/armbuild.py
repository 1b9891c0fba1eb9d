"""Cross-compile generated C for a Cortex-M4 (arm-none-eabi-gcc) and measure flash and RAM.

Three ELFs per model, both for QEMU's ``mps2-an386`` board (code at 0x00000000, SRAM at
0x20000000), with our own vector table, reset handler and linker script (the toolchain's default
script does not match the board and locks the core up):

- the **firmware** ELF: the model plus a ``main`` that runs one inference on static buffers.
  Its ``arm-none-eabi-size`` figures are what a device needs: flash = text + data,
  RAM = data + bss + the deepest stack of the inference (``-fstack-usage``);
- the **harness** ELF: the same model code driven by semihosting, which reads int8 test vectors
  from a host file, runs every inference and writes the outputs back (see ``chainml.mcu.qemu``);
- the **adapt** ELF: the on-device head re-fit (ridge regression on the int8 features), fed
  labelled support samples and queries through semihosting; its size is the footprint of
  inference plus adaptation.

Nothing links newlib: the code is freestanding, with ``memcpy``/``memset`` supplied here in case
the compiler emits calls to them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chainml.errors import ToolchainError

GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
CFLAGS = (
    "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-O2", "-std=c99", "-Wall", "-Wextra",
    "-Werror", "-ffreestanding", "-ffunction-sections", "-fdata-sections", "-fstack-usage",
)  # fmt: skip
LDFLAGS = ("-nostdlib", "-nostartfiles", "-Wl,--gc-sections")
HARNESS_INPUT_BYTES = 256 * 1024
SETUP_HINT = "run `make setup` (Debian packages gcc-arm-none-eabi and libnewlib-arm-none-eabi)"

LINKER_SCRIPT = """
MEMORY
{
  FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M
  RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 4M
}
ENTRY(Reset_Handler)
SECTIONS
{
  .text : {
    KEEP(*(.vectors))
    *(.text*)
    *(.rodata*)
    . = ALIGN(4);
  } > FLASH
  _sidata = LOADADDR(.data);
  .data : {
    _sdata = .;
    *(.data*)
    . = ALIGN(4);
    _edata = .;
  } > RAM AT > FLASH
  .bss (NOLOAD) : {
    _sbss = .;
    *(.bss*)
    *(COMMON)
    . = ALIGN(4);
    _ebss = .;
  } > RAM
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}
"""

STARTUP = r"""
#include <stddef.h>
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void cm_exit(int code);

void *memcpy(void *dst, const void *src, size_t n) {
  uint8_t *d = dst; const uint8_t *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memset(void *dst, int v, size_t n) {
  uint8_t *d = dst;
  while (n--) *d++ = (uint8_t)v;
  return dst;
}

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  cm_exit(main());
}

void Default_Handler(void) {
  for (;;) {}
}

__attribute__((section(".vectors"), used)) const void *const cm_vectors[16] = {
  &_estack, (const void *)Reset_Handler, (const void *)Default_Handler,
  (const void *)Default_Handler, (const void *)Default_Handler, (const void *)Default_Handler,
  (const void *)Default_Handler, 0, 0, 0, 0, (const void *)Default_Handler,
  (const void *)Default_Handler, 0, (const void *)Default_Handler,
  (const void *)Default_Handler,
};
"""

SEMIHOSTING = r"""
#include <stdint.h>

static int32_t cm_semihost(int32_t op, void *args) {
  register int32_t r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = args;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

int32_t cm_open(const char *name, int32_t mode, int32_t len) {
  void *args[3] = {(void *)name, (void *)mode, (void *)len};
  return cm_semihost(0x01, args);
}

int32_t cm_read(int32_t fd, void *buf, int32_t len) {
  void *args[3] = {(void *)fd, buf, (void *)len};
  return len - cm_semihost(0x06, args);
}

int32_t cm_write(int32_t fd, const void *buf, int32_t len) {
  void *args[3] = {(void *)fd, (void *)buf, (void *)len};
  return len - cm_semihost(0x05, args);
}

int32_t cm_close(int32_t fd) {
  void *args[1] = {(void *)fd};
  return cm_semihost(0x02, args);
}

void cm_exit(int code) {
  int32_t args[2] = {0x20026, code}; /* ADP_Stopped_ApplicationExit, exit status */
  cm_semihost(0x20, args);           /* SYS_EXIT_EXTENDED */
  for (;;) {}
}
"""

FIRMWARE_MAIN = r"""
#include "chainml_model.h"

void cm_exit(int code) {
  (void)code;
  for (;;) {}
}

static int8_t cm_input[CHAINML_INPUT_SIZE];
static int8_t cm_output[CHAINML_OUTPUT_SIZE];

int main(void) {
  chainml_infer(cm_input, cm_output);
  return cm_output[0];
}
"""

HARNESS_MAIN = r"""
#include "chainml_model.h"

int32_t cm_open(const char *name, int32_t mode, int32_t len);
int32_t cm_read(int32_t fd, void *buf, int32_t len);
int32_t cm_write(int32_t fd, const void *buf, int32_t len);
int32_t cm_close(int32_t fd);

#define CM_CHUNK (HARNESS_INPUT_BYTES / CHAINML_INPUT_SIZE)
static int8_t cm_in[CM_CHUNK * CHAINML_INPUT_SIZE];
static int8_t cm_out[CM_CHUNK * CHAINML_OUTPUT_SIZE];

int main(void) {
  int32_t in = cm_open("vectors.bin", 1, 11);  /* "rb" */
  int32_t out = cm_open("outputs.bin", 5, 11); /* "wb" */
  if (in < 0 || out < 0) return 2;
  for (;;) {
    int32_t got = cm_read(in, cm_in, CM_CHUNK * CHAINML_INPUT_SIZE) / CHAINML_INPUT_SIZE;
    if (got <= 0) break;
    for (int32_t i = 0; i < got; ++i)
      chainml_infer(cm_in + i * CHAINML_INPUT_SIZE, cm_out + i * CHAINML_OUTPUT_SIZE);
    if (cm_write(out, cm_out, got * CHAINML_OUTPUT_SIZE) != got * CHAINML_OUTPUT_SIZE) return 3;
  }
  cm_close(in);
  cm_close(out);
  return 0;
}
"""


ADAPT_MAIN = r"""
#include "chainml_model.h"

int32_t cm_open(const char *name, int32_t mode, int32_t len);
int32_t cm_read(int32_t fd, void *buf, int32_t len);
int32_t cm_write(int32_t fd, const void *buf, int32_t len);
int32_t cm_close(int32_t fd);

/* adapt.bin: int32 tasks, shots, queries, float lambda; then per task the support inputs and
 * float32 targets interleaved, then the query inputs. preds.bin: float32 predictions. */
int main(void) {
  int32_t in = cm_open("adapt.bin", 1, 9);
  int32_t out = cm_open("preds.bin", 5, 9);
  if (in < 0 || out < 0) return 2;
  int32_t head[3];
  float lambda;
  if (cm_read(in, head, sizeof head) != sizeof head || cm_read(in, &lambda, 4) != 4) return 3;
  int8_t x[CHAINML_INPUT_SIZE];
  float y[CHAINML_OUTPUT_SIZE];
  for (int32_t t = 0; t < head[0]; ++t) {
    chainml_adapt_reset(lambda);
    for (int32_t s = 0; s < head[1]; ++s) {
      if (cm_read(in, x, sizeof x) != sizeof x || cm_read(in, y, sizeof y) != sizeof y) return 4;
      chainml_adapt_add(x, y);
    }
    if (chainml_adapt_solve() != 0) return 5;
    for (int32_t q = 0; q < head[2]; ++q) {
      if (cm_read(in, x, sizeof x) != sizeof x) return 6;
      chainml_predict_adapted(x, y);
      if (cm_write(out, y, sizeof y) != sizeof y) return 7;
    }
  }
  cm_close(in);
  cm_close(out);
  return 0;
}
"""


KERNELS = ("cm_conv", "cm_conv_int4", "cm_conv_sparse", "cm_avgpool")
REQUANT = ("cm_output",)  # usually inlined into the kernels (then it has no .su entry)
FIRMWARE_CALLS = (("Reset_Handler",), ("main",), ("chainml_infer",), KERNELS, REQUANT)
ADAPT_CALLS = (
    ("Reset_Handler",), ("main",),
    ("chainml_adapt_add", "chainml_predict_adapted", "chainml_adapt_solve"),
    ("cm_feature_row",), ("chainml_features",), KERNELS, REQUANT,
)  # fmt: skip


@dataclass(frozen=True)
class Footprint:
    """Measured memory of the firmware ELF (bytes)."""

    text: int
    data: int
    bss: int
    stack: int
    model_flash: int  # the model object's code + constants, from the map file
    model_ram: int  # the model object's buffers, from the map file

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss + self.stack

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes}


@dataclass(frozen=True)
class Build:
    firmware: Path
    harness: Path
    adapt: Path
    footprint: Footprint
    adapt_footprint: Footprint
    gcc_version: str
    files: dict[str, Path] = field(default_factory=dict)


def tool(name: str) -> str:
    """The path of a cross tool, or a one-line ToolchainError pointing to ``make setup``."""
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} not found on PATH; {SETUP_HINT}")
    return path


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ToolchainError(f"{what} failed: {' | '.join(tail)}")
    return proc.stdout


def gcc_version() -> str:
    out = _run([tool(GCC), "--version"], Path.cwd(), "arm-none-eabi-gcc --version")
    return out.splitlines()[0].strip()


def build(sources: dict[str, str], out_dir: Path) -> Build:
    """Write ``sources`` (``chainml_model.{c,h}``) into ``out_dir`` and build both ELFs."""
    gcc = tool(GCC)
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, text in {
        **sources,
        "startup.c": STARTUP,
        "semihosting.c": SEMIHOSTING,
        "firmware_main.c": FIRMWARE_MAIN,
        "harness_main.c": HARNESS_MAIN,
        "adapt_main.c": ADAPT_MAIN,
        "mps2_an386.ld": LINKER_SCRIPT,
    }.items():
        path = out_dir / name
        path.write_text(text)
        files[name] = path
    firmware = _link(
        gcc, out_dir, "firmware", ["startup.c", "firmware_main.c", "chainml_model.c"], []
    )
    footprint = measure(firmware, out_dir / "firmware.map", out_dir / "firmware")
    harness = _link(
        gcc, out_dir, "harness",
        ["startup.c", "semihosting.c", "harness_main.c", "chainml_model.c"],
        [f"-DHARNESS_INPUT_BYTES={HARNESS_INPUT_BYTES}"],
    )  # fmt: skip
    adapt = _link(
        gcc, out_dir, "adapt", ["startup.c", "semihosting.c", "adapt_main.c", "chainml_model.c"], []
    )
    adapt_fp = measure(adapt, out_dir / "adapt.map", out_dir / "adapt", ADAPT_CALLS)
    return Build(firmware, harness, adapt, footprint, adapt_fp, gcc_version(), files)


def _link(gcc: str, out_dir: Path, name: str, sources: list[str], defines: list[str]) -> Path:
    """Compile each source to its own object (so the map file names them), then link."""
    obj_dir = out_dir / name
    obj_dir.mkdir(exist_ok=True)
    objects = []
    for src in sources:
        obj = obj_dir / (Path(src).stem + ".o")
        _run(
            [gcc, *CFLAGS, *defines, "-I", str(out_dir), "-c", str(out_dir / src), "-o", obj.name],
            obj_dir, f"compiling {src} for the {name} ELF",
        )  # fmt: skip
        objects.append(obj.name)
    elf = out_dir / f"{name}.elf"
    _run(
        [gcc, *CFLAGS, "-T", str(out_dir / "mps2_an386.ld"), *LDFLAGS,
         f"-Wl,-Map={out_dir / (name + '.map')}", "-o", str(elf), *objects, "-lgcc"],
        obj_dir, f"linking the {name} ELF",
    )  # fmt: skip
    return elf


def measure(
    elf: Path, map_file: Path, build_dir: Path, calls: tuple[tuple[str, ...], ...] = FIRMWARE_CALLS
) -> Footprint:
    """Sizes from ``arm-none-eabi-size``, the map file and the ``.su`` stack-usage files."""
    out = _run([tool(SIZE), "-A", str(elf)], build_dir, "arm-none-eabi-size")
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    model_flash, model_ram = _map_contributions(map_file.read_text(), "chainml_model")
    return Footprint(
        text=sections.get(".text", 0),
        data=sections.get(".data", 0),
        bss=sections.get(".bss", 0),
        stack=_stack_depth(build_dir, calls),
        model_flash=model_flash,
        model_ram=model_ram,
    )


_MAP_LINE = re.compile(r"^\s*(\.[\w.]+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+\.o)\s*$")


def _map_contributions(text: str, stem: str) -> tuple[int, int]:
    """Bytes the object ``<...>stem.o`` puts in flash (text/rodata/data) and RAM (data/bss)."""
    flash = ram = 0
    pending: str | None = None
    discarded = False
    for line in text.splitlines():
        if line.startswith("Discarded input sections"):
            discarded = True
        elif line.startswith("Memory Configuration") or line.startswith(
            "Linker script and memory map"
        ):
            discarded = False
        if discarded:
            continue
        stripped = line.strip()
        if stripped.startswith(".") and len(stripped.split()) == 1:
            pending = stripped  # a long section name; its address/size follow on the next line
            continue
        m = _MAP_LINE.match(line)
        if not m:
            pending = None
            continue
        section = m.group(1) or pending or ""
        pending = None
        size = int(m.group(3), 16)
        if not m.group(4).endswith(f"{stem}.o") or size == 0:
            continue
        if section.startswith((".text", ".rodata")):
            flash += size
        elif section.startswith(".data"):
            flash += size
            ram += size
        elif section.startswith(".bss") or section.startswith("COMMON"):
            ram += size
    return flash, ram


def _stack_depth(build_dir: Path, calls: tuple[tuple[str, ...], ...]) -> int:
    """Deepest stack along a call chain (one level per tuple of alternatives), from gcc's
    ``.su`` files; a function inlined into its caller has no entry and adds nothing."""
    usage: dict[str, int] = {}
    for su in build_dir.glob("*.su"):
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].strip().isdigit():
                usage[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
    return sum(max((usage.get(f, 0) for f in level), default=0) for level in calls)
