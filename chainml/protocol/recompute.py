"""The aggregate of a round as a pure function of its evidence: what validators vote on.

The aggregator proposes exactly what ``compute_aggregate`` returns, validators recompute it and
compare CIDs and list roots, and ``chainml verify`` replays it for every finalized version. The
aggregation rule, its settings and the server step (optimizer, learning-rate schedule, and the
optimizer state) all come from the base version's file, which the chain names by CID; the new
version carries them forward. Nothing off chain, and no later change of a code default, can
change the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainml.aggregate.strategies import Contribution, Strategy, strategy_for_recipe
from chainml.chain.merkle import MerkleTree, address_leaf
from chainml.errors import IntegrityError
from chainml.meta.federated import server_step
from chainml.meta.recipe import Recipe
from chainml.protocol.evidence import RoundEvidence
from chainml.protocol.payloads import decode_update, decode_version, encode_weights
from chainml.protocol.settlement import ReputationTable
from chainml.storage.blockstore import BlockNotFoundError
from chainml.storage.cid import cid_str
from chainml.storage.store import Store
from chainml.storage.unixfs import file_cid

MIN_REPUTATION = 700
"""Reputation-weighted inclusion: below this (in the reputation table in force) a node's update
is left out. Nodes start at 1,000 and lose 50 per exclusion, so about six net exclusions gate a
node."""


@dataclass(frozen=True)
class AggregateOutcome:
    arch_id: str
    rule_id: int
    recipe: Recipe
    weights: bytes
    weights_cid: str
    included: tuple[str, ...]
    excluded: tuple[str, ...]
    invalid: tuple[tuple[str, str], ...]
    """Nodes whose committed update could not be used, and why (they are also excluded)."""
    reputation: ReputationTable
    """Every registered node's reputation after this round (its root goes into the proposal)."""
    gated_count: int = 0
    """Nodes this round puts below the initial score (the ledger's ``gatedCount``)."""

    @property
    def included_root(self) -> bytes:
        return node_list_root(self.included)

    @property
    def excluded_root(self) -> bytes:
        return node_list_root(self.excluded)


def _shared_cids(evidence: RoundEvidence) -> set[str]:
    """Update CIDs committed by more than one node: copied work or one operator's sybils."""
    seen: dict[str, int] = {}
    for update in evidence.updates:
        seen[update.update_cid] = seen.get(update.update_cid, 0) + 1
    return {cid for cid, count in seen.items() if count > 1}


def node_list_root(nodes: tuple[str, ...]) -> bytes:
    """Merkle root of a proposal's node list (all zeros for an empty list)."""
    return MerkleTree([address_leaf(n) for n in nodes]).root if nodes else b"\x00" * 32


def compute_aggregate(
    evidence: RoundEvidence, store: Store, strategy: Strategy | None = None
) -> AggregateOutcome:
    """Fetch and verify every committed update, aggregate, and apply the server step.

    ``strategy`` defaults to the base version's recipe; a strategy whose rule differs from the
    recipe's (a proposal that names another rule) raises IntegrityError.

    An update whose bytes do not match its CID, that is malformed, or that was never stored
    excludes its node. Any other storage failure (an outage, a timeout) raises instead: it says
    nothing about the node, and guessing would make the aggregator and validators disagree.
    """
    base_version = decode_version(store.get(evidence.base_weights_cid))
    arch_id, recipe = base_version.arch_id, base_version.recipe
    rule = strategy_for_recipe(recipe)
    if strategy is not None and strategy.rule_id != rule.rule_id:
        raise IntegrityError(
            f"rule {strategy.name!r} is not the recipe's aggregation rule {rule.name!r}"
        )
    contributions: list[Contribution] = []
    invalid: list[tuple[str, str]] = [
        (leaf.node, leaf.reason) for leaf in evidence.rejected if leaf.attributable
    ]
    shared = _shared_cids(evidence)
    for update in evidence.updates:
        reputation = evidence.reputation.get(update.node.lower(), MIN_REPUTATION)
        if reputation < MIN_REPUTATION:
            invalid.append((update.node, f"reputation {reputation} is below {MIN_REPUTATION}"))
            continue
        if update.update_cid in shared:
            invalid.append((update.node, f"update {update.update_cid} is also another node's"))
            continue
        try:
            sparse = decode_update(store.get(update.update_cid), arch_id)
        except IntegrityError as exc:
            invalid.append((update.node, str(exc)))
            continue
        except BlockNotFoundError:
            invalid.append((update.node, f"update {update.update_cid} was never stored"))
            continue
        dense = sparse.to_dense()
        if not np.any(dense):
            invalid.append((update.node, "empty update (no work done)"))
            continue
        contributions.append(Contribution(update.node, dense, update.num_samples))
    if not contributions:
        raise IntegrityError(f"round {evidence.round} has no usable update to aggregate")
    result = rule.aggregate(contributions)
    new_params, new_state = server_step(
        base_version.params, arch_id, result.delta, base_version.state, recipe
    )
    weights = encode_weights(new_params, arch_id, recipe=recipe, state=new_state)
    included = set(result.included)
    excluded = tuple(
        sorted({*result.excluded, *(n for n, _ in invalid if n not in included)}, key=str.lower)
    )
    table = evidence.prior_table.next(
        evidence.round, evidence.registered, result.included, excluded, evidence.rules
    )
    return AggregateOutcome(
        arch_id=arch_id,
        rule_id=rule.rule_id,
        recipe=recipe,
        weights=weights,
        weights_cid=cid_str(file_cid(weights)),
        included=result.included,
        excluded=excluded,
        invalid=tuple(invalid),
        reputation=table,
        gated_count=len(table.newly_gated(evidence.prior_table)),
    )
