"""Compiling never needs the network: run it in a network namespace that only has loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from chainml.paths import PROJECT_ROOT, node_modules

COMPILE_PROBE = (
    "from tests.foundation.probe import compile_probe;"
    "artifact = compile_probe();"
    "assert artifact['evm']['bytecode']['object'], 'empty bytecode';"
    "print('compiled', len(artifact['abi']), 'abi entries')"
)


def run_without_network(*argv: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    unshare = shutil.which("unshare")
    assert unshare, "util-linux `unshare` is needed to prove compiling works with no network"
    return subprocess.run(
        [unshare, "--user", "--map-root-user", "--net", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_network_namespace_really_has_no_network() -> None:
    probe = "import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)"
    result = run_without_network(sys.executable, "-c", probe)
    assert result.returncode != 0
    assert "Network is unreachable" in result.stderr or "OSError" in result.stderr


def test_solcx_compiles_with_no_network() -> None:
    result = run_without_network(sys.executable, "-c", COMPILE_PROBE)
    assert result.returncode == 0, result.stderr
    assert "compiled" in result.stdout


def test_brownie_compile_works_with_no_network_and_gives_the_shipped_bytecode(
    tmp_path: Path,
) -> None:
    """`brownie compile` (the setup step's pipeline, through the same adapter) compiles a copy
    of the project offline, in another directory and with an empty HOME, to exactly the
    bytecode chainml ships: the relative remapping keeps it the same in every checkout."""
    from chainml.chain.artifacts import DEPLOYABLE, artifact
    from chainml.toolchain import use_project_solc

    binary = use_project_solc()
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "contracts", project / "contracts")
    shutil.copy2(PROJECT_ROOT / "brownie-config.yaml", project / "brownie-config.yaml")
    (project / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    (project / "build").mkdir()
    (project / "tests").mkdir()  # brownie makes its tests folder (tests/brownie), not parents
    home = tmp_path / "home"
    home.mkdir()
    env_args = [
        "env",
        f"HOME={home}",
        f"SOLCX_BINARY_PATH={binary.parent}",
        f"PATH={os.environ['PATH']}",
    ]
    brownie = str(Path(sys.executable).with_name("brownie"))
    result = run_without_network(*env_args, brownie, "compile", cwd=project)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Compiling contracts" in result.stdout
    for name in DEPLOYABLE:
        built = json.loads((project / "build" / "contracts" / f"{name}.json").read_text())
        assert built["bytecode"] == artifact(name).bytecode, name
        assert built["abi"] == artifact(name).abi, name
