"""What a round's commitments were, rebuilt from chain events and IPFS alone.

The aggregator, every validator and ``chainml verify`` call ``gather_round``; nothing here
reads local state. Direct and relayed commitments come from ``CommitmentAccepted`` events
(the contract already verified them). Batched commitments come from the leaves file on IPFS;
since the contract only holds the Merkle root, each leaf is checked here exactly as a
challenger would: the file must rebuild the posted root, and each leaf needs a valid signature
by a node that was registered, active and behind the posting gateway when the batch was posted,
with at least the round's minimum reputation, for the right round and the round's base
version, and must not be voided by a challenge. Reputation is each node's score in the
reputation table in force while the round runs (the latest finalized round's, whose root the
ledger recorded; see ``chainml.protocol.settlement``), the same table the ledger gates on.
A voided or invalid leaf is dropped from every computation and counts against nobody: anyone
can replay an old signed leaf, so a bad leaf says nothing about its node. A node's direct or
relayed commitment wins over its batch leaves (the contract voids such a leaf); otherwise a
node counts once, the first in chain order.

Only data that can never change is consulted (events, registry state rebuilt from events up to
the batch's block, CIDs), so the same round gives the same evidence whenever and wherever it is
gathered. A leaves file the store cannot provide is marked ``unavailable``: validators refuse
to vote on a round whose data they cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chainml.chain.client import Ledger
from chainml.chain.eip712 import (
    SignedCommitment,
    checksum_address,
    from_fixed,
    recover_signer,
    struct_hash,
    typed_digest,
)
from chainml.chain.merkle import MerkleTree, commitment_leaf
from chainml.chain.records import BatchPosted
from chainml.errors import IntegrityError, StorageError
from chainml.protocol.codecs import decode_leaves
from chainml.protocol.settlement import (
    ReputationRules,
    ReputationTable,
    registered_before,
    rules_of,
    table_before,
)
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import Store


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
    """The fault counts against the node. Never for a batch leaf: anyone can replay an old
    signature, and a challenged leaf must leave every computation."""
    unavailable: bool = False
    """The batch's leaves file could not be fetched (not corrupt: missing or timed out)."""


@dataclass(frozen=True)
class RoundEvidence:
    round: int
    base_version: int
    base_weights_cid: str
    updates: tuple[CommittedUpdate, ...]
    rejected: tuple[RejectedLeaf, ...]
    reputation: dict[str, int]
    """Each committer's reputation in the table in force (lower-case address keys)."""
    prior_table: ReputationTable = field(default_factory=lambda: ReputationTable.genesis(1_000))
    """The reputation table in force while the round runs; the round's table builds on it."""
    registered: tuple[str, ...] = ()
    """Every node registered before the round opened (all are in the round's table)."""
    rules: ReputationRules = field(default_factory=ReputationRules)


def gather_round(ledger: Ledger, store: Store, round_id: int, from_block: int = 0) -> RoundEvidence:
    info = ledger.round_info(round_id)
    base_version = info.base_version
    min_reputation = info.min_reputation
    weights_digest, weights_codec = ledger.version(base_version).weights
    prior = table_before(ledger, store, round_id, from_block)
    direct: list[CommittedUpdate] = []
    for event in ledger.commitments(round_id, from_block):
        direct.append(
            CommittedUpdate(
                node=event.node,
                update_cid=onchain_to_str(*event.update),
                num_samples=event.num_samples,
                loss_before=from_fixed(event.loss_before),
                loss_after=from_fixed(event.loss_after),
                source="direct/relayed",
                position=(event.block, event.log_index, 0),
            )
        )
    committed = {u.node.lower() for u in direct}
    candidates = list(direct)
    rejected: list[RejectedLeaf] = []
    batches = ledger.batches(round_id, from_block)
    if batches:  # read the registry events up to the last batch once, not batch by batch
        ledger.registry_events(max(b.block for b in batches), from_block)
    for batch in batches:
        accepted, bad = _batch_leaves(
            ledger, store, round_id, base_version, batch, from_block, committed
        )
        if accepted:
            for update in accepted:
                score = prior.score(update.node)
                if score < min_reputation:
                    index = update.position[2]
                    reason = f"reputation {score} is below the round's minimum {min_reputation}"
                    bad.append(RejectedLeaf(batch.batch_id, index, update.node, reason))
                else:
                    candidates.append(update)
        rejected.extend(bad)
    seen: set[str] = set()
    updates = []
    for update in sorted(candidates, key=lambda u: u.position):
        if update.node.lower() in seen:
            continue
        seen.add(update.node.lower())
        updates.append(update)
    reputation = {u.node.lower(): prior.score(u.node) for u in updates}
    return RoundEvidence(
        round=round_id,
        base_version=base_version,
        base_weights_cid=onchain_to_str(weights_digest, weights_codec),
        updates=tuple(updates),
        rejected=tuple(rejected),
        reputation=reputation,
        prior_table=prior,
        registered=registered_before(ledger, round_id, from_block),
        rules=rules_of(ledger),
    )


def _batch_leaves(
    ledger: Ledger,
    store: Store,
    round_id: int,
    base_version: int,
    batch: BatchPosted,
    from_block: int,
    committed: set[str],
) -> tuple[list[CommittedUpdate], list[RejectedLeaf]]:
    batch_id = batch.batch_id
    leaves_cid = onchain_to_str(*batch.leaves)
    try:
        file_round, leaves = decode_leaves(store.get(leaves_cid))
    except IntegrityError as exc:
        return [], [RejectedLeaf(batch_id, -1, "", f"unreadable leaves file {leaves_cid}: {exc}")]
    except StorageError as exc:
        reason = f"leaves file {leaves_cid} of batch {batch_id} is unavailable: {exc}"
        return [], [RejectedLeaf(batch_id, -1, "", reason, unavailable=True)]
    # Each leaf's struct hash once: for its tree leaf (what ``ledger.batch_tree`` builds) and
    # for the digest its signature must recover from.
    structs = [struct_hash(s.commitment) for s in leaves]
    leaf_hashes = [commitment_leaf(h, s.r, s.vs) for h, s in zip(structs, leaves, strict=True)]
    roots = MerkleTree(leaf_hashes).root if leaves else b""
    if file_round != round_id or len(leaves) != batch.leaf_count or roots != batch.root:
        reason = f"leaves file {leaves_cid} does not rebuild batch {batch_id}'s root"
        return [], [RejectedLeaf(batch_id, -1, "", reason)]
    voided = {e.leaf for e in ledger.voided_leaves(batch_id, from_block)}
    block, log_index = batch.position
    registry = ledger.registry_at([s.commitment.node for s in leaves], block, from_block)
    gateway = batch.gateway.lower()
    accepted, bad = [], []
    for index, signed in enumerate(leaves):
        c = signed.commitment
        voided_leaf = leaf_hashes[index] in voided
        reason = _leaf_fault(ledger, signed, round_id, base_version, voided_leaf, structs[index])
        node = registry[c.node.lower()]
        if reason is None and not node.registered:
            reason = f"{c.node} is not a registered node"
        if reason is None and not node.active:
            reason = f"{c.node} was deactivated when batch {batch_id} was posted"
        if reason is None and node.gateway.lower() != gateway:
            reason = f"{c.node} is not behind gateway {batch.gateway}"
        if reason is None and c.node.lower() in committed:
            reason = f"{c.node} also committed directly in round {round_id}"
        if reason:
            bad.append(RejectedLeaf(batch_id, index, c.node, reason))
            continue
        accepted.append(
            CommittedUpdate(
                node=checksum_address(c.node),
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
    ledger: Ledger,
    signed: SignedCommitment,
    round_id: int,
    base_version: int,
    voided: bool,
    struct: bytes | None = None,
) -> str | None:
    """Why a leaf does not count (None if its signature, round and base are right and no
    challenge voided it), checked as a challenger would. ``struct``: the commitment's struct
    hash, if the caller has it already."""
    c = signed.commitment
    struct = struct_hash(c) if struct is None else struct
    try:
        signer = recover_signer(
            typed_digest(struct, ledger.domain_separator), signed.r, signed.s, signed.v
        )
    except ValueError as exc:
        return f"invalid signature ({exc})"
    if "0x" + signer.hex() != c.node.lower():
        return f"signed by {checksum_address(signer)}, not by {c.node}"
    if voided:
        return "voided by a challenge"
    if c.round != round_id:
        return f"commitment is for round {c.round} (replayed or misdirected)"
    if c.base_version != base_version:
        return f"stale base version {c.base_version} (round base is {base_version})"
    return None
