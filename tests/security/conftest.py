"""Security regression fixtures: a fresh Anvil per test (the swarm's ``make_env``), the contract
fixtures, and ``wave1_module`` (``tests/security/wave1.py``), which loads the wave-1 version of
a module so each test can show its attack succeeding before the fix."""

from __future__ import annotations

from tests.security.wave1 import wave1_module
from tests.swarm.conftest import SwarmEnv, make_env  # noqa: F401 - fixture re-export

__all__ = ["SwarmEnv", "wave1_module"]

# The contract fixtures (one deployment per session, a snapshot per test).
from tests.contracts.conftest import (  # noqa: F401 - fixture re-exports
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
