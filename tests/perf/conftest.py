"""The perf tests reuse the contract tests' deployment fixtures (one Anvil per session)."""

from tests.contracts.conftest import (  # noqa: F401 - fixtures, used by name
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
