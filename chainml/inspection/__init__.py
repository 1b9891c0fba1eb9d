"""Read what happened on a chainml deployment: contracts, nodes, versions, rounds, events.

Everything here reads a chain through ``connect(rpc_url, deployments_file)`` and returns plain
dataclasses, so the CLI renders them as tables or JSON and tests assert on them directly.
"""

from chainml.inspection.events import Event, filter_events, read_events
from chainml.inspection.history import (
    ProposalRow,
    RoundRow,
    VersionRow,
    VoteRow,
    rounds_view,
    versions_view,
)
from chainml.inspection.registry import (
    ContractsView,
    NodeHistory,
    NodeRound,
    NodeRow,
    contracts_view,
    node_history,
    nodes_view,
)
from chainml.inspection.source import ChainSource, connect

__all__ = [
    "ChainSource",
    "ContractsView",
    "Event",
    "NodeHistory",
    "NodeRound",
    "NodeRow",
    "ProposalRow",
    "RoundRow",
    "VersionRow",
    "VoteRow",
    "connect",
    "contracts_view",
    "filter_events",
    "node_history",
    "nodes_view",
    "read_events",
    "rounds_view",
    "versions_view",
]
