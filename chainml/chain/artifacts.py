"""The compiled contracts chainml deploys and talks to: ABI and creation bytecode, package data.

``make setup`` compiles ``contracts/`` once (``chainml.chain.compile``, through brownie, whose
build is what ``brownie run scripts/deploy.py`` deploys) and writes one JSON file per
deployable contract into ``chainml/chain/artifacts/``, with a manifest of the inputs they were
compiled from. Nothing at run time compiles: this module only reads those files, and in a
checkout it first checks that the contracts' sources, the compiler pin and the compiler
settings are still the ones the manifest names, so editing a contract without rerunning
``make setup`` is one clear error instead of a silently stale deployment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chainml.errors import ToolchainError
from chainml.paths import PROJECT_ROOT

ARTIFACTS_DIR = Path(__file__).with_name("artifacts")
MANIFEST = ARTIFACTS_DIR / "manifest.json"
FORMAT = "chainml.contract-artifacts.v1"
LEDGER = "ChainMLLedger"
VOTING = "ChainMLVoting"
PARAMS = "ChainMLParams"
DEPLOYABLE = (LEDGER, VOTING, PARAMS)
COMPILER_SETTINGS = "brownie-config.yaml"
NPM_PINS = ("solc", "@openzeppelin/contracts")
"""Besides the sources, the artifacts depend on the compiler settings (brownie's config) and
on these npm pins (package.json): the compiler and the library the contracts import."""
SETUP_HINT = "run `make setup`"


@dataclass(frozen=True)
class Artifact:
    """ABI and creation bytecode (hex, no 0x) of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def compile_inputs(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """What the artifacts are compiled from: the sha256 of ``contracts/**/*.sol`` and of the
    compiler settings by path relative to ``root``, and the npm pins as ``npm:<name>``."""
    files = [*sorted((root / "contracts").rglob("*.sol")), root / COMPILER_SETTINGS]
    out = {
        f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in files
        if f.exists()
    }
    try:
        pins = json.loads((root / "package.json").read_text()).get("dependencies", {})
    except (OSError, ValueError):
        pins = {}
    out.update({f"npm:{name}": str(pins.get(name)) for name in NPM_PINS})
    return out


def stale_inputs(recorded: dict[str, str], root: Path = PROJECT_ROOT) -> list[str]:
    """Inputs that differ from what the artifacts were compiled from (added and removed
    files included); empty outside a checkout, where there is nothing to compare."""
    if not (root / "contracts").is_dir():
        return []
    current = compile_inputs(root)
    return sorted(p for p in recorded.keys() | current.keys() if recorded.get(p) != current.get(p))


@cache
def manifest() -> dict[str, Any]:
    """The manifest ``make setup`` wrote; raises one line when it is missing or stale."""
    try:
        raw = json.loads(MANIFEST.read_text())
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
    except FileNotFoundError:
        raise ToolchainError(
            f"the compiled contracts are missing ({MANIFEST} does not exist); {SETUP_HINT}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ToolchainError(
            f"the compiled contracts' manifest is unreadable ({exc}); {SETUP_HINT}"
        ) from exc
    stale = stale_inputs(raw["inputs"])
    if stale:
        shown = ", ".join(stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        raise ToolchainError(
            f"the compiled contracts are stale: {shown} changed since they were built; "
            f"{SETUP_HINT} to recompile"
        )
    return raw


@cache
def artifact(name: str) -> Artifact:
    """One compiled contract by name (``ChainMLLedger``, ``ChainMLVoting``, ``ChainMLParams``)."""
    if name not in manifest()["contracts"]:
        raise ToolchainError(f"no compiled contract named {name!r} in {ARTIFACTS_DIR}")
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
        return Artifact(name, raw["abi"], raw["bytecode"])
    except (OSError, ValueError, KeyError) as exc:
        raise ToolchainError(
            f"the compiled contract {path} is unreadable ({exc}); {SETUP_HINT}"
        ) from exc


def abi(name: str) -> list[dict[str, Any]]:
    return artifact(name).abi
