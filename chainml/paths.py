"""Where chainml finds its toolchain and keeps its state.

The toolchain (node_modules, the solc adapter) lives in the project checkout that ``make setup``
prepared. State (chain database, IPFS repo, deployments, runs) lives in a data directory chosen
by ``--data-dir`` or ``CHAINML_DATA_DIR``, defaulting to ``.chainml`` under the current directory,
so two checkouts never share state by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout chainml is installed from (an editable install, see ``make setup``)."""

DATA_DIR_ENV = "CHAINML_DATA_DIR"
NODE_MODULES_ENV = "CHAINML_NODE_MODULES"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the explicit argument, else $CHAINML_DATA_DIR, else ./.chainml."""
    chosen = explicit or os.environ.get(DATA_DIR_ENV) or Path.cwd() / ".chainml"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def node_modules() -> Path:
    """The npm tree holding anvil, ganache, solc-js, OpenZeppelin and js-ipfs."""
    return Path(os.environ.get(NODE_MODULES_ENV, PROJECT_ROOT / "node_modules")).resolve()


def toolchain_dir() -> Path:
    """Generated toolchain files (the solc adapter); rebuilt by ``make setup``."""
    return PROJECT_ROOT / ".toolchain"


def node_scripts_dir() -> Path:
    """The project's own Node.js scripts (solc adapter, js-ipfs launcher)."""
    return PROJECT_ROOT / "node"
