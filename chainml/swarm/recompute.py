"""The aggregate of a round as a pure function of its evidence: what validators vote on.

The aggregator proposes exactly what ``compute_aggregate`` returns, validators recompute it and
compare CIDs and list roots, and ``chainml verify`` replays it for every finalized version. The
rule's settings are fixed by its on-chain rule id and the server step is a protocol constant,
so nothing off chain can change the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainml.aggregate.strategies import Contribution, Strategy
from chainml.chain.merkle import MerkleTree, address_leaf
from chainml.errors import IntegrityError
from chainml.meta.federated import apply_update
from chainml.storage.blockstore import BlockNotFoundError
from chainml.storage.cid import cid_str
from chainml.storage.store import Store
from chainml.storage.unixfs import file_cid
from chainml.swarm.evidence import RoundEvidence
from chainml.swarm.payloads import decode_update, decode_weights, encode_weights, weights_arch

SERVER_LR = 1.0
"""Reptile's outer step on the aggregated delta: part of the protocol, not a run setting."""
MIN_REPUTATION = 700
"""Reputation-weighted inclusion: below this (when the round opened) a node's update is left
out. Nodes start at 1,000 and lose 50 per exclusion, so about six net exclusions gate a node."""


@dataclass(frozen=True)
class AggregateOutcome:
    arch_id: str
    weights: bytes
    weights_cid: str
    included: tuple[str, ...]
    excluded: tuple[str, ...]
    invalid: tuple[tuple[str, str], ...]
    """Nodes whose committed update could not be used, and why (they are also excluded)."""

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
    evidence: RoundEvidence, store: Store, strategy: Strategy
) -> AggregateOutcome:
    """Fetch and verify every committed update, aggregate, and apply the server step.

    An update whose bytes do not match its CID, that is malformed, or that was never stored
    excludes its node. Any other storage failure (an outage, a timeout) raises instead: it says
    nothing about the node, and guessing would make the aggregator and validators disagree.
    """
    base_bytes = store.get(evidence.base_weights_cid)
    arch_id = weights_arch(base_bytes)
    base = decode_weights(base_bytes, arch_id)
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
    result = strategy.aggregate(contributions)
    new_params = apply_update(base, arch_id, result.delta, SERVER_LR)
    weights = encode_weights(new_params, arch_id)
    included = set(result.included)
    excluded = tuple(
        sorted({*result.excluded, *(n for n, _ in invalid if n not in included)}, key=str.lower)
    )
    return AggregateOutcome(
        arch_id=arch_id,
        weights=weights,
        weights_cid=cid_str(file_cid(weights)),
        included=result.included,
        excluded=excluded,
        invalid=tuple(invalid),
    )
