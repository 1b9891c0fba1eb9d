"""brownie as a library: ``chainml deploy``, ``console`` and ``demo`` run the project's brownie
scripts in this process, against the local chain at any port.

``brownie run scripts/deploy.py --network anvil`` is the brownie way, for a chain on brownie's
``anvil`` port (8545). chainml's commands take any local ``--rpc-url`` instead, so
:func:`brownie_session`:

- loads the brownie project (``make setup`` compiled it, so brownie finds its build current
  and compiles nothing) and its config, as ``brownie run`` does, from the project's root: the
  OpenZeppelin remapping is relative (``node_modules/...``, which keeps the bytecode the same
  in every checkout), and brownie reads those sources relative to the working directory;
- registers the URL as a development network for this process only: the entry
  ``brownie networks add development ...`` would write to ``~/.brownie``, which stays as it is;
- connects, so the scripts get brownie's own ``accounts`` and contract containers;
- imports a script from its file. brownie's own ``run`` turns the script's absolute path into a
  module name, which fails as soon as a directory in the path has a dot (``/tmp/ci.x1/repo``).
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from chainml.chain.artifacts import manifest
from chainml.errors import ChainError, ConfigError
from chainml.paths import PROJECT_ROOT
from chainml.services.rpc import rpc_call
from chainml.toolchain import npm_binary, use_project_solc

NETWORK_ID = "chainml-local"
PROJECT_NAME = "ChainmlProject"
SCRIPTS_DIR = PROJECT_ROOT / "scripts"


@dataclass(frozen=True)
class BrownieSession:
    """brownie connected to one chain with the chainml project loaded."""

    project: Any
    rpc_url: str

    def script(self, name: str) -> ModuleType:
        """``scripts/<name>.py`` imported from its file (fresh on every call)."""
        path = SCRIPTS_DIR / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"chainml_brownie_scripts.{name}", path)
        if spec is None or spec.loader is None or not path.exists():
            raise ConfigError(f"no brownie script {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def client_engine(rpc_url: str) -> str:
    """``anvil`` or ``ganache``: what answers at ``rpc_url`` (a local chain only)."""
    url = urlparse(rpc_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        raise ConfigError(f"brownie deploys only to a local chain on 127.0.0.1, not {rpc_url}")
    try:
        version = str(rpc_call(rpc_url, "web3_clientVersion")).lower()
    except Exception as exc:  # connection refused, timeout, bad response
        raise ChainError(f"no chain answers at {rpc_url} ({exc}); start it first") from exc
    return "ganache" if "ganache" in version else "anvil"


def network_entry(rpc_url: str, engine: str) -> dict[str, Any]:
    """The development network brownie attaches to (it would only launch ``cmd`` if nothing
    listened at the URL, and :func:`client_engine` checked that something does)."""
    url = urlparse(rpc_url)
    settings: dict[str, Any] = {"port": url.port}
    if engine == "ganache":
        settings["evm_version"] = "shanghai"  # brownie's default (istanbul) lacks PUSH0
    return {
        "name": f"chainml local chain ({engine})",
        "id": NETWORK_ID,
        "cmd": str(npm_binary(engine)),
        "host": f"http://{url.hostname}",
        "cmd_settings": settings,
    }


@contextmanager
def brownie_session(rpc_url: str, *, silent: bool = False) -> Iterator[BrownieSession]:
    """brownie connected to the local chain at ``rpc_url`` with the project loaded; the
    project's objects (``ChainMLLedger``...) importable from ``brownie`` as in a script.
    ``silent`` drops what brownie and the scripts print (a line per transaction)."""
    engine = client_engine(rpc_url)
    manifest()  # the compiled contracts are current (the same setup step built brownie's build)
    use_project_solc()  # brownie finds the offline compiler should it need one
    from brownie import network, project
    from brownie._config import CONFIG
    from brownie.exceptions import BrownieEnvironmentWarning
    from brownie.network.rpc import Rpc

    CONFIG.networks[NETWORK_ID] = network_entry(rpc_url, engine)
    cwd = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        loaded = project.load(PROJECT_ROOT, name=PROJECT_NAME)
    except BaseException:
        os.chdir(cwd)
        raise
    try:
        loaded.load_config()  # brownie-config.yaml's network settings (gas price), as `run` does
        # brownie's own snapshot on attaching (in a thread) warns about its deprecated API
        warnings.filterwarnings("ignore", "rpc.snapshot should not be called", FutureWarning)
        with redirect_stdout(io.StringIO() if silent else sys.stdout):
            with warnings.catch_warnings():
                # "Development network has a block height of N": attaching to a used chain
                warnings.simplefilter("ignore", BrownieEnvironmentWarning)
                network.connect(NETWORK_ID)
            loaded._add_to_main_namespace()  # what `brownie run` does before a script
            try:
                yield BrownieSession(loaded, rpc_url)
            except Exception as exc:
                if type(exc).__module__.split(".")[0] != "brownie":
                    raise
                raise ChainError(f"brownie: {type(exc).__name__}: {exc}") from exc
            finally:
                loaded._remove_from_main_namespace()
                network.disconnect(kill_rpc=False)
                # brownie's exit handler kills an attached chain that is this process's child
                # (``chainml demo`` starts the chain itself): detach, so the chain outlives
                # the command as it does after `brownie run` from another process.
                Rpc().process = None
    finally:
        loaded.close(raises=False)
        CONFIG.networks.pop(NETWORK_ID, None)
        os.chdir(cwd)
