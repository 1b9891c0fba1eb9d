"""Run the brownie deploy script against any local RPC URL, from Python (Makefile, CLI, tests).

brownie keeps its network list in ``~/.brownie/network-config.yaml``. To never touch the
user's file, the subprocess gets its own HOME (``<data_dir>/brownie-home``) whose
network-config defines one development network, ``chainml-local``, pointing at the given URL.
brownie attaches to the chain already listening there (it would only launch ``cmd`` if nothing
listened, and we check first that something does).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from chainml.chain.deployments import Deployments, deployments_path, load_deployments
from chainml.errors import ChainError, ConfigError
from chainml.paths import PROJECT_ROOT, node_modules
from chainml.toolchain import npm_binary, use_project_solc

NETWORK_ID = "chainml-local"


def network_config(rpc_url: str, engine: str) -> str:
    """A brownie network-config.yaml (JSON is valid YAML) with one development network."""
    url = urlparse(rpc_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        raise ConfigError(f"brownie deploys only to a local chain on 127.0.0.1, not {rpc_url}")
    settings: dict[str, object] = {"port": url.port}
    if engine == "ganache":
        settings["evm_version"] = "shanghai"  # brownie's default (istanbul) breaks PUSH0 code
    else:
        settings["base_fee"] = 0
    network = {
        "name": "chainml local chain",
        "id": NETWORK_ID,
        "cmd": str(npm_binary(engine)),
        "host": f"http://{url.hostname}",
        "cmd_settings": settings,
    }
    return json.dumps({"live": [], "development": [network]}, indent=2) + "\n"


def client_engine(rpc_url: str) -> str:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    try:
        version = w3.client_version.lower()
    except Exception as exc:  # connection refused, timeout, bad response
        raise ChainError(f"no chain answers at {rpc_url} ({exc}); start it first") from exc
    return "ganache" if "ganache" in version else "anvil"


def brownie_env(data_dir: Path, rpc_url: str, engine: str) -> dict[str, str]:
    """Environment for a brownie subprocess: own HOME with our network-config."""
    home = data_dir / "brownie-home"
    (home / ".brownie").mkdir(parents=True, exist_ok=True)
    (home / ".brownie" / "network-config.yaml").write_text(network_config(rpc_url, engine))
    use_project_solc()
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        CHAINML_DATA_DIR=str(data_dir),
        CHAINML_RPC_URL=rpc_url,
        CHAINML_NODE_MODULES=str(node_modules()),
        SOLCX_BINARY_PATH=os.environ["SOLCX_BINARY_PATH"],
    )
    return env


def brownie_project_dir() -> Path:
    """The directory to run brownie in: the checkout, or a mirror when its path has a dot.

    brownie imports a script under a module name made from its absolute path
    (``/a/b/scripts/deploy.py`` becomes ``a.b.scripts.deploy``), so any dot in the checkout's
    path (``/tmp/ci.x1/repo``) breaks ``brownie run``. In that case the brownie project files
    are mirrored into a dot-free directory whose ``build/`` links back to the checkout's, so
    the compile cache and deployment records stay in one place.
    """
    build = PROJECT_ROOT / "build" / "brownie"
    build.mkdir(parents=True, exist_ok=True)  # brownie creates its subfolders, not these
    if not any("." in part for part in PROJECT_ROOT.parts[1:]):
        return PROJECT_ROOT
    digest = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    mirror = Path(tempfile.gettempdir()) / f"chainml-brownie-{digest}"
    if any("." in part for part in mirror.parts[1:]):
        raise ConfigError(
            f"brownie cannot run scripts from {PROJECT_ROOT} (a dot in the path) and the temp "
            f"dir {mirror.parent} has one too; set TMPDIR to a path without dots"
        )
    (mirror / "tests").mkdir(parents=True, exist_ok=True)  # parent of brownie's tests folder
    for name in ("contracts", "scripts"):
        target = mirror / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(PROJECT_ROOT / name, target)
    shutil.copy2(PROJECT_ROOT / "brownie-config.yaml", mirror / "brownie-config.yaml")
    for name, target in (("build", PROJECT_ROOT / "build"), ("node_modules", node_modules())):
        link = mirror / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link)
            link.symlink_to(target, target_is_directory=True)
    return mirror


def run_brownie(
    args: list[str],
    data_dir: Path,
    rpc_url: str,
    timeout: float = 900,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Run ``brownie <args>`` in the project root against ``rpc_url``; returns its stdout."""
    engine = client_engine(rpc_url)
    env = brownie_env(data_dir, rpc_url, engine) | (extra_env or {})
    brownie = Path(sys.executable).with_name("brownie")
    cmd = [str(brownie), *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=brownie_project_dir(),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChainError(f"`{' '.join(cmd)}` failed to run: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ChainError(f"`brownie {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def run_deploy_script(
    rpc_url: str,
    data_dir: Path,
    params_file: Path | None = None,
    genesis_cid: str | None = None,
) -> Deployments:
    """Deploy with ``brownie run scripts/deploy.py`` and return the deployments it wrote.

    Without a params file the script wires the dev accounts; ``genesis_cid`` then names version
    0's weights (the caller stores them first), otherwise a placeholder CID no store holds.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    extra = {"CHAINML_DEPLOY_PARAMS": str(Path(params_file).resolve())} if params_file else {}
    if genesis_cid:
        extra["CHAINML_GENESIS_CID"] = genesis_cid
    run_brownie(
        ["run", "scripts/deploy.py", "--network", NETWORK_ID], data_dir, rpc_url, extra_env=extra
    )
    deployments = load_deployments(deployments_path(data_dir))
    if deployments is None:
        raise ChainError(f"the deploy script ran but wrote no {deployments_path(data_dir)}")
    return deployments


def run_register_script(rpc_url: str, data_dir: Path, count: int, gateway_index: int = 9) -> str:
    """Register ``count`` dev nodes with ``brownie run scripts/register_nodes.py``."""
    return run_brownie(
        [
            "run",
            "scripts/register_nodes.py",
            "main",
            str(count),
            str(gateway_index),
            "--network",
            NETWORK_ID,
        ],
        Path(data_dir).resolve(),
        rpc_url,
    )
