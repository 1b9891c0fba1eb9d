"""Setup step (``make setup`` runs ``python -m chainml.chain.compile``): compile the contracts
once, with brownie, and export what chainml ships.

There is one compile pipeline: ``brownie compile`` through the project's solc-js adapter
(settings and the OpenZeppelin remapping in ``brownie-config.yaml``) writes brownie's build,
which ``brownie run scripts/deploy.py`` and the console deploy from; this step then copies the
deployable contracts' ABI and creation bytecode from that build into ``chainml/chain/artifacts/``
(package data, read by :mod:`chainml.chain.artifacts`) with a manifest of the inputs. So
brownie's containers and chainml's ``Ledger`` deploy the same bytecode, and no command compiles
at run time. The remapping is relative (``node_modules/...``), which keeps the bytecode's
metadata hash the same in every checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chainml.chain.artifacts import ARTIFACTS_DIR, DEPLOYABLE, FORMAT, MANIFEST, compile_inputs
from chainml.errors import ToolchainError
from chainml.paths import PROJECT_ROOT
from chainml.toolchain import solc_version, use_project_solc

BROWNIE_BUILD = PROJECT_ROOT / "build" / "contracts"
"""brownie's build directory (``project_structure.build`` in brownie-config.yaml)."""


def brownie_compile() -> None:
    """``brownie compile`` in the checkout, offline, through the solc-js adapter."""
    solc = use_project_solc()
    (PROJECT_ROOT / "build").mkdir(exist_ok=True)
    brownie = Path(sys.executable).with_name("brownie")
    env = os.environ | {"SOLCX_BINARY_PATH": str(solc.parent)}
    try:
        proc = subprocess.run(
            [str(brownie), "compile"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"`brownie compile` could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise ToolchainError(f"`brownie compile` failed (exit {proc.returncode}):\n{tail}")


def export_artifacts() -> list[Path]:
    """Copy ABI + creation bytecode of the deployable contracts from brownie's build, then
    write the manifest (last: it is the stamp that says the set is complete)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DEPLOYABLE:
        source = BROWNIE_BUILD / f"{name}.json"
        try:
            build = json.loads(source.read_text())
        except (OSError, ValueError) as exc:
            raise ToolchainError(f"brownie's build has no usable {source}: {exc}") from exc
        if not build.get("bytecode"):
            raise ToolchainError(f"brownie's build of {name} has no bytecode")
        written.append(
            _write(
                ARTIFACTS_DIR / f"{name}.json",
                {"contractName": name, "abi": build["abi"], "bytecode": build["bytecode"]},
            )
        )
    manifest = {
        "format": FORMAT,
        "compiler": build["compiler"],
        "solc": solc_version(),
        "contracts": list(DEPLOYABLE),
        "inputs": compile_inputs(),
    }
    written.append(_write(MANIFEST, manifest))
    return written


def _write(path: Path, value: object) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def main() -> None:
    brownie_compile()
    for path in export_artifacts():
        print(f"contract artifacts: {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
