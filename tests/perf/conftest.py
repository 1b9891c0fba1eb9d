"""The perf tests reuse the contract tests' deployment fixtures (one Anvil per session)."""

from tests.contracts.conftest import (  # noqa: F401 - fixtures, used by name
    accounts,
    admin,
    aggregator,
    deployments,
    gateway,
    ledger,
    rando,
    session_ledger,
    validators,
)
