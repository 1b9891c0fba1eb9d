"""The gateway now lives with the other actors (``chainml.actors.gateway``); direct commits,
which nodes send themselves, are in ``chainml.actors.node``."""

from chainml.actors.gateway import Gateway, Submission
from chainml.actors.node import DIRECT_CHUNK, DIRECT_COMMIT_GAS, NODE_FUNDING_WEI, fund_accounts

__all__ = [
    "DIRECT_CHUNK",
    "DIRECT_COMMIT_GAS",
    "NODE_FUNDING_WEI",
    "Gateway",
    "Submission",
    "fund_accounts",
]
