"""Contracts are compiled once, at setup: commands read the shipped artifacts, never solc, and
say in one line when the artifacts are missing or older than contracts/."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

from chainml.chain import artifacts
from chainml.paths import PROJECT_ROOT

PROBE = """
import sys
from pathlib import Path
import chainml.chain.artifacts as artifacts
artifacts.MANIFEST = Path(sys.argv[1])
from chainml.cli.main import main
sys.exit(main(["--data-dir", sys.argv[2], "inspect", "contracts", "--rpc-url", sys.argv[3]]))
"""


def _inspect_with_manifest(manifest: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`chainml inspect contracts` with the artifacts' manifest at ``manifest``; the RPC URL
    does not matter, the artifacts are checked before anything is read."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(manifest), str(tmp_path), "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_the_shipped_artifacts_are_current() -> None:
    recorded = artifacts.manifest()
    assert recorded["inputs"] == artifacts.compile_inputs()
    assert {"contracts/ChainMLLedger.sol", "brownie-config.yaml", "npm:solc"} <= set(
        recorded["inputs"]
    )
    for name in artifacts.DEPLOYABLE:
        assert artifacts.artifact(name).bytecode and artifacts.abi(name)


def test_editing_a_contract_makes_the_artifacts_stale(tmp_path: Path) -> None:
    """A checkout whose contracts differ from the manifest's inputs is reported, by file."""
    copy = tmp_path / "checkout"
    shutil.copytree(PROJECT_ROOT / "contracts", copy / "contracts")
    for name in ("brownie-config.yaml", "package.json"):
        shutil.copy2(PROJECT_ROOT / name, copy / name)
    recorded = artifacts.manifest()["inputs"]
    assert artifacts.stale_inputs(recorded, copy) == []
    voting = copy / "contracts" / "ChainMLVoting.sol"
    voting.write_text(voting.read_text() + "\n// edited\n")
    (copy / "contracts" / "Extra.sol").write_text("// a new contract\n")
    assert artifacts.stale_inputs(recorded, copy) == [
        "contracts/ChainMLVoting.sol",
        "contracts/Extra.sol",
    ]


def test_commands_say_run_make_setup_in_one_line(tmp_path: Path) -> None:
    stale = json.loads(artifacts.MANIFEST.read_text())
    stale["inputs"]["contracts/ChainMLLedger.sol"] = "0" * 64
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(stale))
    for path, words in (
        (manifest, "stale: contracts/ChainMLLedger.sol changed since they were built"),
        (tmp_path / "missing.json", "the compiled contracts are missing"),
    ):
        result = _inspect_with_manifest(path, tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "run `make setup`" in lines[0], lines


def test_no_runtime_module_compiles() -> None:
    """Only the setup step (chainml.chain.compile) and the toolchain installer may reach the
    compiler: no other module imports solcx or the setup step."""
    allowed = {
        PROJECT_ROOT / "chainml" / "chain" / "compile.py",
        PROJECT_ROOT / "chainml/toolchain.py",
    }
    offenders = []
    for path in sorted((PROJECT_ROOT / "chainml").rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(PROJECT_ROOT)}: {name}"
                for name in names
                if name.split(".")[0] == "solcx" or name == "chainml.chain.compile"
            ]
    assert offenders == []
