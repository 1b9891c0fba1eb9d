"""What a round's commitments were, rebuilt from chain events and IPFS alone.

The aggregator, every validator and ``chainml verify`` call ``gather_round``; nothing here
reads local state. Direct and relayed commitments come from ``CommitmentAccepted`` events
(the contract already verified them). Batched commitments come from the leaves file on IPFS;
since the contract only holds the Merkle root, each leaf is checked here exactly as a
challenger would: the file must rebuild the posted root, and each leaf needs a valid signature
by a registered node, the right round and the round's base version, and must not be voided.
A node that appears more than once counts once: the first in chain order.

Only data that can never change is consulted (events, the registry's "registered" bit, CIDs),
so the same round gives the same evidence whenever and wherever it is gathered.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import to_checksum_address

from chainml.chain.client import Ledger
from chainml.chain.eip712 import SignedCommitment, from_fixed, struct_hash
from chainml.chain.eip712 import digest as commitment_digest
from chainml.chain.merkle import commitment_leaf
from chainml.errors import IntegrityError
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import Store
from chainml.swarm.payloads import decode_leaves
from chainml.swarm.reads import node_infos, reputations_before


@dataclass(frozen=True)
class CommittedUpdate:
    """One accepted commitment: whose update, where it is, and what the node reported."""

    node: str
    update_cid: str
    num_samples: int
    loss_before: float
    loss_after: float
    source: str  # "direct/relayed" or "batch:<id>"
    position: tuple[int, int, int]  # (block, log index, leaf index) for chain order


@dataclass(frozen=True)
class RejectedLeaf:
    batch_id: int
    index: int
    node: str
    reason: str
    attributable: bool = False
    """The node itself signed the faulty leaf, so the fault counts against its reputation."""


@dataclass(frozen=True)
class RoundEvidence:
    round: int
    base_version: int
    base_weights_cid: str
    updates: tuple[CommittedUpdate, ...]
    rejected: tuple[RejectedLeaf, ...]
    reputation: dict[str, int]
    """Each committer's reputation when the round opened (lower-case address keys)."""


def gather_round(ledger: Ledger, store: Store, round_id: int, from_block: int = 0) -> RoundEvidence:
    info = ledger.round_info(round_id)
    base_version = int(info["baseVersion"])
    weights_digest, weights_codec = ledger.version(base_version)["weights"]
    candidates: list[CommittedUpdate] = []
    for event in ledger.commitments(round_id, from_block):
        candidates.append(
            CommittedUpdate(
                node=to_checksum_address(event["node"]),
                update_cid=onchain_to_str(event["updateDigest"], event["updateCodec"]),
                num_samples=int(event["numSamples"]),
                loss_before=from_fixed(int(event["lossBefore"])),
                loss_after=from_fixed(int(event["lossAfter"])),
                source="direct/relayed",
                position=(int(event["blockNumber"]), int(event["logIndex"]), 0),
            )
        )
    rejected: list[RejectedLeaf] = []
    for batch in ledger.batches(round_id, from_block):
        accepted, bad = _batch_leaves(ledger, store, round_id, base_version, batch, from_block)
        candidates.extend(accepted)
        rejected.extend(bad)
    seen: set[str] = set()
    updates = []
    for update in sorted(candidates, key=lambda u: u.position):
        if update.node.lower() in seen:
            continue
        seen.add(update.node.lower())
        updates.append(update)
    opened = ledger.logs(ledger.ledger, "RoundOpened", from_block, round=round_id)
    opened_at = int(opened[0]["blockNumber"]) if opened else from_block
    reputation = reputations_before(ledger, [u.node for u in updates], opened_at, from_block)
    return RoundEvidence(
        round=round_id,
        base_version=base_version,
        base_weights_cid=onchain_to_str(weights_digest, weights_codec),
        updates=tuple(updates),
        rejected=tuple(rejected),
        reputation=reputation,
    )


def _batch_leaves(
    ledger: Ledger,
    store: Store,
    round_id: int,
    base_version: int,
    batch: dict[str, object],
    from_block: int,
) -> tuple[list[CommittedUpdate], list[RejectedLeaf]]:
    batch_id = int(batch["batchId"])  # type: ignore[arg-type]
    leaves_cid = onchain_to_str(batch["leavesDigest"], batch["leavesCodec"])  # type: ignore[arg-type]
    try:
        file_round, leaves = decode_leaves(store.get(leaves_cid))
    except IntegrityError as exc:
        return [], [RejectedLeaf(batch_id, -1, "", f"unreadable leaves file {leaves_cid}: {exc}")]
    roots = ledger.batch_tree(leaves).root if leaves else b""
    if file_round != round_id or len(leaves) != int(batch["leafCount"]) or roots != batch["root"]:  # type: ignore[call-overload]
        reason = f"leaves file {leaves_cid} does not rebuild batch {batch_id}'s root"
        return [], [RejectedLeaf(batch_id, -1, "", reason)]
    voided = {bytes(e["leaf"]) for e in ledger.voided_leaves(batch_id, from_block)}
    registry = node_infos(ledger, [s.commitment.node for s in leaves])
    block, log_index = int(batch["blockNumber"]), int(batch["logIndex"])  # type: ignore[call-overload]
    accepted, bad = [], []
    for index, signed in enumerate(leaves):
        c = signed.commitment
        leaf = commitment_leaf(struct_hash(c), signed.r, signed.vs)
        registered = bool(registry[c.node.lower()]["registered"])
        reason, signed_by_node = _leaf_fault(ledger, signed, round_id, base_version, leaf in voided)
        if reason is None and not registered:
            reason = f"{c.node} is not a registered node"
        if reason:
            bad.append(RejectedLeaf(batch_id, index, c.node, reason, signed_by_node and registered))
            continue
        accepted.append(
            CommittedUpdate(
                node=to_checksum_address(c.node),
                update_cid=onchain_to_str(c.update_digest, c.update_codec),
                num_samples=c.num_samples,
                loss_before=from_fixed(c.loss_before),
                loss_after=from_fixed(c.loss_after),
                source=f"batch:{batch_id}",
                position=(block, log_index, index),
            )
        )
    return accepted, bad


def _leaf_fault(
    ledger: Ledger, signed: SignedCommitment, round_id: int, base_version: int, voided: bool
) -> tuple[str | None, bool]:
    """Why a leaf does not count (None if it is valid), checked as a challenger would, and
    whether the node's own signature makes the fault the node's."""
    c = signed.commitment
    try:
        signature = keys.Signature(
            vrs=(signed.v - 27, int.from_bytes(signed.r, "big"), int.from_bytes(signed.s, "big"))
        )
        signer = signature.recover_public_key_from_msg_hash(
            commitment_digest(c, ledger.domain_separator)
        ).to_checksum_address()
    except (BadSignature, ValueError) as exc:
        return f"invalid signature ({exc})", False
    if signer.lower() != c.node.lower():
        return f"signed by {signer}, not by {c.node}", False
    if voided:
        return "voided by a challenge", True
    if c.round != round_id:
        return f"commitment is for round {c.round} (replayed or misdirected)", True
    if c.base_version != base_version:
        return f"stale base version {c.base_version} (round base is {base_version})", True
    return None, True
