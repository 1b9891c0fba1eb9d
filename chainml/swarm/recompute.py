"""The aggregate of a round as a pure function of its evidence: what validators vote on.

The aggregator proposes exactly what ``compute_aggregate`` returns, validators recompute it and
compare CIDs and list roots, and ``chainml verify`` replays it for every finalized version. The
rule's settings are fixed by its on-chain rule id and the server step is a protocol constant,
so nothing off chain can change the result.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    invalid: list[tuple[str, str]] = []
    for update in evidence.updates:
        try:
            sparse = decode_update(store.get(update.update_cid), arch_id)
        except IntegrityError as exc:
            invalid.append((update.node, str(exc)))
            continue
        except BlockNotFoundError:
            invalid.append((update.node, f"update {update.update_cid} was never stored"))
            continue
        contributions.append(Contribution(update.node, sparse.to_dense(), update.num_samples))
    if not contributions:
        raise IntegrityError(f"round {evidence.round} has no usable update to aggregate")
    result = strategy.aggregate(contributions)
    new_params = apply_update(base, arch_id, result.delta, SERVER_LR)
    weights = encode_weights(new_params, arch_id)
    excluded = tuple(sorted({*result.excluded, *(n for n, _ in invalid)}, key=str.lower))
    return AggregateOutcome(
        arch_id=arch_id,
        weights=weights,
        weights_cid=cid_str(file_cid(weights)),
        included=result.included,
        excluded=excluded,
        invalid=tuple(invalid),
    )
