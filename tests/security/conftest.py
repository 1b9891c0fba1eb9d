"""Security regression fixtures: a fresh Anvil per test (the swarm's ``make_env``), and the
wave-1 version of a module (``git show HEAD~:...``-free: read from the stored legacy copy or
the committed tree) so each test can show its attack succeeding before the fix."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from chainml.paths import PROJECT_ROOT
from tests.swarm.conftest import SwarmEnv, make_env  # noqa: F401 - fixture re-export

WAVE1_COMMIT = "410302e"
"""The last commit before issue 12's changes (the wave-1 code)."""


MOVED = {
    r"chainml\.swarm\.reads\b": "chainml.chain.reads",
    r"chainml\.swarm\.validator\b": "chainml.protocol.review",
    r"chainml\.swarm\.(evidence|recompute|payloads|verify|settlement|gas)\b": (
        r"chainml.protocol.\1"
    ),
}
"""Modules that moved since wave 1: the old code imports today's helpers from their new home."""


def wave1_module(path: str, name: str) -> ModuleType:
    """Load ``path`` as it was at the wave-1 commit (read with ``git show``; no git state
    changes), under a private module name, its imports of moved modules redirected."""
    source = subprocess.run(
        ["git", "show", f"{WAVE1_COMMIT}:{path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for old, new in MOVED.items():
        source = re.sub(old, new, source)
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(Path(PROJECT_ROOT) / path)
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


__all__ = ["SwarmEnv", "wave1_module"]

# The contract fixtures (one deployment per session, a snapshot per test).
from tests.contracts.conftest import (  # noqa: E402, F401 - fixture re-exports
    accounts,
    admin,
    aggregator,
    deployments,
    gateway,
    ledger,
    make_node,
    open_round,
    rando,
    session_ledger,
    sign,
    validators,
)
