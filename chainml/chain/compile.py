"""Compile ``contracts/`` offline with the project's solc-js adapter, caching artifacts.

Artifacts are cached in ``build/chainml/`` keyed by a hash of every source, the compiler
version and the settings, so tests and the bench compile once and reuse the JSON afterwards.
brownie keeps its own artifacts in ``build/contracts``; both come from the same sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainml.errors import ToolchainError
from chainml.paths import PROJECT_ROOT, node_modules
from chainml.toolchain import solc_version, use_project_solc

CONTRACTS_DIR = PROJECT_ROOT / "contracts"
CACHE_DIR = PROJECT_ROOT / "build" / "chainml"
EVM_VERSION = "shanghai"  # Ganache 7.9.2 stops at Shanghai; OZ 5.4 needs no mcopy.
OPTIMIZER_RUNS = 200
DEPLOYABLE = ("ChainMLLedger", "ChainMLVoting", "ChainMLParams")


@dataclass(frozen=True)
class Artifact:
    """ABI and creation bytecode of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    @property
    def runtime_size(self) -> int:
        return len(self.bytecode) // 2


def _sources() -> dict[str, str]:
    files = sorted(CONTRACTS_DIR.rglob("*.sol"))
    if not files:
        raise ToolchainError(f"no Solidity sources under {CONTRACTS_DIR}")
    return {f.relative_to(PROJECT_ROOT).as_posix(): f.read_text() for f in files}


def _standard_input(sources: dict[str, str]) -> dict[str, Any]:
    oz = node_modules() / "@openzeppelin"
    return {
        "language": "Solidity",
        "sources": {path: {"content": text} for path, text in sources.items()},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "remappings": [f"@openzeppelin/={oz}/"],
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def _cache_key(standard_input: dict[str, Any]) -> str:
    blob = json.dumps(standard_input, sort_keys=True) + solc_version()
    oz_manifest = node_modules() / "@openzeppelin" / "contracts" / "package.json"
    if oz_manifest.exists():
        blob += oz_manifest.read_text()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compile_contracts(*, force: bool = False) -> dict[str, Artifact]:
    """All contracts under ``contracts/`` (and the OZ code they import), by contract name."""
    standard_input = _standard_input(_sources())
    cache = CACHE_DIR / f"artifacts-{_cache_key(standard_input)}.json"
    if cache.exists() and not force:
        raw = json.loads(cache.read_text())
    else:
        raw = _run_solc(standard_input)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(raw))
        os.replace(tmp, cache)
    return {name: Artifact(name, a["abi"], a["bytecode"]) for name, a in raw.items()}


def _run_solc(standard_input: dict[str, Any]) -> dict[str, dict[str, Any]]:
    binary = use_project_solc()
    allow = f"{PROJECT_ROOT},{node_modules()}"
    try:
        proc = subprocess.run(
            [str(binary), "--standard-json", "--allow-paths", allow],
            input=json.dumps(standard_input),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        out = json.loads(proc.stdout[proc.stdout.index("{") :])
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"the solc adapter {binary} failed: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        msg = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise ToolchainError(f"compiling {CONTRACTS_DIR} failed:\n{msg}")
    result: dict[str, dict[str, Any]] = {}
    for path, contracts in out.get("contracts", {}).items():
        if not path.startswith("contracts/"):
            continue
        for name, data in contracts.items():
            result[name] = {"abi": data["abi"], "bytecode": data["evm"]["bytecode"]["object"]}
    return result


def artifact(name: str) -> Artifact:
    """One compiled contract by name."""
    artifacts = compile_contracts()
    try:
        return artifacts[name]
    except KeyError:
        raise ToolchainError(f"no compiled contract named {name!r}") from None


def sources_root() -> Path:
    return CONTRACTS_DIR
