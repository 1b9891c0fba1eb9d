"""What ``chainml inspect`` shows: contracts, nodes, versions, rounds, one node's story.

The views are built from the chain's one typed read layer (``chainml.chain``: ``connect``,
``ChainReader``, the decoded event log in ``chainml.chain.eventlog``) plus what the chain's
CIDs name on IPFS (``batches``: batched commitments, voted lists, reputation tables), and come
back as plain dataclasses, so the CLI renders them as tables or JSON and tests assert on them.
Nothing here imports torch.
"""

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

__all__ = [
    "ContractsView",
    "NodeHistory",
    "NodeRound",
    "NodeRow",
    "ProposalRow",
    "RoundRow",
    "VersionRow",
    "VoteRow",
    "contracts_view",
    "node_history",
    "nodes_view",
    "rounds_view",
    "versions_view",
]
