"""Who is in the swarm: node keys, tasks and hardware, and the service accounts of the ledger.

Node keys are derived from the run seed (``keccak("chainml-swarm-<seed>-<index>")``), so a
rerun of the same command has the same fleet. Service roles (admin, aggregator, validators,
gateway) are the local chain's unlocked development accounts, as the deploy script wires them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from eth_account.signers.local import LocalAccount

from chainml.chain.keys import dev_node_account
from chainml.device.profile import get_profile
from chainml.meta.tasks.base import task_rng
from chainml.swarm.config import SwarmConfig

GATEWAY_ACCOUNT_INDEX = 9
"""Dev account 9 relays for the fleet (0 is admin, 1 aggregator, 2-8 validators)."""


@dataclass(frozen=True)
class FleetNode:
    index: int
    account: LocalAccount
    profile: str

    @property
    def address(self) -> str:
        return self.account.address


class Fleet:
    """The nodes of one run, in index order."""

    def __init__(self, config: SwarmConfig) -> None:
        self.config = config
        for name in config.profiles:
            get_profile(name)  # fail early on a typo

    @cached_property
    def nodes(self) -> list[FleetNode]:
        profiles = self.config.profiles
        seed = f"chainml-swarm-{self.config.seed}"
        return [
            FleetNode(i, dev_node_account(i, seed), profiles[i % len(profiles)])
            for i in range(self.config.nodes)
        ]

    def by_address(self) -> dict[str, FleetNode]:
        return {n.address.lower(): n for n in self.nodes}

    def dropped(self, round_id: int) -> set[int]:
        """Node indices that drop out of ``round_id`` (seeded, so a resume agrees)."""
        if self.config.dropout <= 0:
            return set()
        rng = task_rng(self.config.seed, 7, round_id)
        draws = rng.random(self.config.nodes)
        return {i for i in range(self.config.nodes) if draws[i] < self.config.dropout}
