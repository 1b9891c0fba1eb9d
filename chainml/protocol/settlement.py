"""Reputation settlement: one Merkle root per finalized round, not one write per node.

Every finalized round records, on chain, the root of a **reputation table**: the reputation of
every registered node after that round. The table itself is a small canonical JSON file on
IPFS (its CID is in the accepted proposal), a pure function of chain and IPFS data:

    table(r) = table(r') + every node registered before round r opened (at the initial score)
               + every node of round r's voted lists, then +inclusionReward for each included
               node and -exclusionPenalty for each excluded one (int64, saturating),

where r' is the latest round finalized before r (the genesis table is empty: every node has
the initial score). The proposal names the root it builds on (``parentReputationRoot``), and
the ledger refuses one that is not its latest root, so roots chain round by round and
settlement cannot be reordered or skipped. The aggregator proposes the table, validators
recompute it and vote only if root, CID and counts match, and ``chainml verify`` replays it.

Leaf encoding (``merkle.reputation_leaf``): ``keccak256(bytes.concat(keccak256(abi.encode(
address node, int64 score))))``, leaves in ascending order of the lower-case address, paired
with OpenZeppelin's sorted-pair hashing. The recorded root is the sorted-pair hash of two
trees over those leaves: every node's, and the sub-table of nodes below the initial score. A
node that must prove (it is below the initial score) proves through the small sub-table, so
its proof, and settlement, cost the same however many nodes are registered; any node can
prove through the full table. The genesis (empty) table's root is zero. File encoding
(``ReputationTable.encode``)::

    {"format": "chainml-reputation-table/1", "initial": 1000, "parent_root": "0x..",
     "round": r, "scores": [["0xChecksumAddress", score], ...]}

with sorted keys, no whitespace, entries in leaf order.

A node proves its score against the latest root when it needs to: a node below the initial
score (``nodeInfo().mustProve``) must have a proof against the latest root to commit, and a
batch leaf is judged on reputation by its node's proven score. So the only settlement work
after a round is proving the nodes it put below the initial score (``gatedCount``, none in an
honest round); the next round opens once they are proven. ``settle_round`` does that, and also
refreshes the proofs of the other nodes below the initial score, so that they can commit (or be
challenged) in the next round exactly as validators gate them off chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chainml.chain.client import Ledger, Sender
from chainml.chain.eip712 import checksum_address
from chainml.chain.merkle import EMPTY_ROOT, MerkleTree, hash_pair, reputation_leaf
from chainml.chain.records import NodeRegistered, ProposalSubmitted, RoundFinalized, RoundOpened
from chainml.chain.types import NO_CID, Proposal, ProposalStatus
from chainml.errors import IntegrityError
from chainml.protocol.codecs import TABLE_FORMAT, canonical_json, parse_json
from chainml.storage.cid import cid_str, cid_to_onchain, onchain_to_str
from chainml.storage.store import Store, stored_problem
from chainml.storage.unixfs import file_cid

if TYPE_CHECKING:
    from chainml.protocol.recompute import AggregateOutcome

PROVE_CHUNK = 100
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ReputationRules:
    """How a round moves a node's reputation: the ledger's immutable parameters."""

    initial: int = 1_000
    inclusion_reward: int = 10
    exclusion_penalty: int = 50


def rules_of(ledger: Ledger) -> ReputationRules:
    """The ledger's reputation rules (immutable, so read once per ``Ledger`` object; not per
    address, since a fresh local chain reuses addresses)."""
    rules = getattr(ledger, "_reputation_rules", None)
    if rules is None:
        fns = ledger.ledger.functions
        rules = ReputationRules(
            initial=ledger.initial_reputation(),
            inclusion_reward=int(fns.inclusionReward().call()),
            exclusion_penalty=int(fns.exclusionPenalty().call()),
        )
        ledger._reputation_rules = rules  # type: ignore[attr-defined]
    return rules


def _saturate(value: int) -> int:
    return max(_INT64[0], min(_INT64[1], value))


@dataclass(frozen=True)
class ReputationTable:
    """Every registered node's reputation after finalized round ``round`` (0: the genesis
    table, empty). A node missing from the table has the initial score."""

    round: int
    parent_root: bytes
    initial: int
    scores: tuple[tuple[str, int], ...] = ()
    """(checksum address, score), in ascending order of the lower-case address."""
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({node.lower(): i for i, (node, _) in enumerate(self.scores)})

    @classmethod
    def genesis(cls, initial: int) -> ReputationTable:
        return cls(round=0, parent_root=EMPTY_ROOT, initial=initial)

    @classmethod
    def of(
        cls, round_id: int, parent_root: bytes, initial: int, scores: dict[str, int]
    ) -> ReputationTable:
        entries = [(checksum_address(n), int(s)) for n, s in scores.items()]
        entries.sort(key=lambda e: e[0].lower())
        return cls(round_id, bytes(parent_root), int(initial), tuple(entries))

    # -- reading ---------------------------------------------------------------------------

    def __contains__(self, node: str) -> bool:
        return node.lower() in self._index

    def score(self, node: str) -> int:
        i = self._index.get(node.lower())
        return self.initial if i is None else self.scores[i][1]

    def as_dict(self) -> dict[str, int]:
        """Scores keyed by lower-case address."""
        return {n.lower(): s for n, s in self.scores}

    @cached_property
    def tree(self) -> MerkleTree:
        """Every node's leaf."""
        return MerkleTree([reputation_leaf(n, s) for n, s in self.scores])

    @cached_property
    def below(self) -> tuple[MerkleTree, dict[str, int]]:
        """The sub-table of nodes below the initial score, and each one's index in it."""
        entries = [(n, s) for n, s in self.scores if s < self.initial]
        index = {n.lower(): i for i, (n, _) in enumerate(entries)}
        return MerkleTree([reputation_leaf(n, s) for n, s in entries]), index

    @property
    def root(self) -> bytes:
        """The root the ledger records: the pair of the full and the below-initial trees (all
        zero for the genesis table)."""
        if self.round == 0 and not self.scores:
            return EMPTY_ROOT
        return hash_pair(self.tree.root, self.below[0].root)

    def proof(self, node: str) -> list[bytes]:
        """The proof of ``node``'s leaf against :attr:`root`: through the below-initial
        sub-table for a node below the initial score (short), else through the full table.
        ``IntegrityError`` if the node is not in the table."""
        i = self._index.get(node.lower())
        if i is None:
            raise IntegrityError(f"{node} is not in the reputation table of round {self.round}")
        below, index = self.below
        if node.lower() in index:
            return [*below.proof(index[node.lower()]), self.tree.root]
        return [*self.tree.proof(i), below.root]

    # -- the next round --------------------------------------------------------------------

    def next(
        self,
        round_id: int,
        registered: Iterable[str],
        included: Iterable[str],
        excluded: Iterable[str],
        rules: ReputationRules,
    ) -> ReputationTable:
        """The table after round ``round_id``: this table, the nodes registered before it
        opened and the nodes of its lists (at the initial score if new), then the round's
        rewards and penalties."""
        scores = self.as_dict()
        included, excluded = list(included), list(excluded)
        for node in [*registered, *included, *excluded]:
            scores.setdefault(node.lower(), self.initial)
        for node in included:
            scores[node.lower()] = _saturate(scores[node.lower()] + rules.inclusion_reward)
        for node in excluded:
            scores[node.lower()] = _saturate(scores[node.lower()] - rules.exclusion_penalty)
        return ReputationTable.of(round_id, self.root, self.initial, scores)

    def newly_gated(self, previous: ReputationTable) -> tuple[str, ...]:
        """Nodes below the initial score here that were not in ``previous``: the ones the
        ledger counts as this round's ``gatedCount`` (each must be proven before the next
        round opens)."""
        return tuple(
            n for n, s in self.scores if s < self.initial and previous.score(n) >= self.initial
        )

    # -- the file --------------------------------------------------------------------------

    def encode(self) -> bytes:
        return canonical_json(
            {
                "format": TABLE_FORMAT,
                "round": self.round,
                "parent_root": "0x" + self.parent_root.hex(),
                "initial": self.initial,
                "scores": [[n, s] for n, s in self.scores],
            }
        )

    @cached_property
    def cid(self) -> str:
        """The table file's CID (what ``store.put(self.encode())`` returns)."""
        return cid_str(file_cid(self.encode()))

    @classmethod
    def decode(cls, data: bytes) -> ReputationTable:
        """Parse a table file; anything malformed is an ``IntegrityError`` (one line)."""
        raw = parse_json(data, "reputation table")
        try:
            if not isinstance(raw, dict) or raw.get("format") != TABLE_FORMAT:
                raise ValueError("not a chainml reputation table")
            scores = {str(n): int(s) for n, s in raw["scores"]}
            table = cls.of(
                int(raw["round"]), bytes.fromhex(str(raw["parent_root"])[2:]), int(raw["initial"]),
                scores,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise IntegrityError(f"malformed reputation table: {exc}") from exc
        if table.encode() != data:
            raise IntegrityError("reputation table is not in canonical form")
        return table


# ------------------------------------------------------------------------------------------
# Tables from chain and IPFS data
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRef:
    """What the chain says about a finalized round's table: its root (from
    ``RoundFinalized``), the proposal's table CID, parent root and gated count."""

    round: int
    root: bytes
    cid: str | None
    parent_root: bytes
    gated_count: int


def accepted_proposal(
    ledger: Ledger, round_id: int, from_block: int = 0
) -> ProposalSubmitted | None:
    """The accepted proposal's full input (with CIDs), from its ``ProposalSubmitted`` event."""
    for event in ledger.proposals(round_id, from_block):
        if ledger.proposal(event.proposal_id).status == ProposalStatus.ACCEPTED:
            return event
    return None


def table_ref(ledger: Ledger, round_id: int, from_block: int = 0) -> TableRef:
    """The table reference of finalized round ``round_id``."""
    finalized = ledger.events(RoundFinalized, from_block, round=round_id)
    accepted = accepted_proposal(ledger, round_id, from_block)
    if not finalized or accepted is None:
        raise IntegrityError(f"round {round_id} is not finalized: it has no reputation table")
    proposal = accepted.proposal
    digest, codec = proposal.reputation_table or NO_CID
    return TableRef(
        round=round_id,
        root=finalized[0].reputation_root,
        cid=onchain_to_str(digest, codec) if any(digest) else None,
        parent_root=proposal.parent_reputation_root,
        gated_count=finalized[0].gated_count,
    )


_TABLES: dict[tuple[int, str], ReputationTable] = {}
"""Decoded tables by (store, CID): content-addressed, so only the parsing is cached."""


def fetch_table(ledger: Ledger, store: Store, ref: TableRef) -> ReputationTable:
    """The stored table of ``ref``, verified by the store against its CID and here against
    the root the chain recorded."""
    if ref.cid is None:
        if ref.root == EMPTY_ROOT:
            return ReputationTable.genesis(rules_of(ledger).initial)
        raise IntegrityError(f"round {ref.round} records a reputation root but no table CID")
    key = (id(store), ref.cid)
    table = _TABLES.get(key)
    if table is None:
        table = ReputationTable.decode(store.get(ref.cid))
        if len(_TABLES) > 64:
            _TABLES.clear()
        _TABLES[key] = table
    if table.root != ref.root or table.round != ref.round:
        raise IntegrityError(
            f"reputation table {ref.cid} does not rebuild round {ref.round}'s root "
            f"0x{ref.root.hex()}"
        )
    return table


def last_finalized_before(ledger: Ledger, round_id: int, from_block: int = 0) -> int:
    """The latest round finalized before ``round_id`` (0 if none): whose table gates it."""
    rounds = [e.round for e in ledger.events(RoundFinalized, from_block)]
    return max((r for r in rounds if r < round_id), default=0)


def table_before(
    ledger: Ledger, store: Store, round_id: int, from_block: int = 0
) -> ReputationTable:
    """The table in force while round ``round_id`` runs (the genesis table before any)."""
    previous = last_finalized_before(ledger, round_id, from_block)
    if previous == 0:
        return ReputationTable.genesis(rules_of(ledger).initial)
    return fetch_table(ledger, store, table_ref(ledger, previous, from_block))


def registered_before(ledger: Ledger, round_id: int, from_block: int = 0) -> tuple[str, ...]:
    """Every node registered before round ``round_id`` opened (chain order of events)."""
    opened = ledger.events(RoundOpened, from_block, round=round_id)
    if not opened:
        raise IntegrityError(f"round {round_id} never opened")
    at = opened[0].position
    # The registry events come from this process's cache of them (ChainReader.registry_events):
    # every gatherer asks this for every round, and decoding all registrations each time
    # dominated.
    return tuple(
        e.node
        for e in ledger.registry_events(at[0], from_block)
        if isinstance(e, NodeRegistered) and e.position < at
    )


def proposal_fields(store: Store, outcome: AggregateOutcome) -> dict[str, Any]:
    """Store the outcome's reputation table on IPFS and return the ``Proposal`` fields that
    name it (``Proposal(..., **proposal_fields(store, outcome))``)."""
    table: ReputationTable = outcome.reputation
    cid = store.put(table.encode())
    if cid_str(cid) != table.cid:
        raise IntegrityError(
            f"the store returned {cid_str(cid)} for the reputation table, expected {table.cid}"
        )
    return {
        "parent_reputation_root": table.parent_root,
        "reputation_root": table.root,
        "reputation_table": cid_to_onchain(cid),
        "gated_count": outcome.gated_count,
    }


def check_proposal(store: Store, outcome: AggregateOutcome, proposal: Proposal) -> str | None:
    """Why a proposal's reputation fields differ from the recomputed ones (None if they
    match and the proposed table is available with exactly the recomputed bytes)."""
    table: ReputationTable = outcome.reputation
    digest, codec = proposal.reputation_table or NO_CID
    proposed_cid = onchain_to_str(digest, codec) if any(digest) else None
    checks = {
        "parent reputation root": (table.parent_root, proposal.parent_reputation_root),
        "reputation root": (table.root, proposal.reputation_root),
        "reputation table CID": (table.cid, proposed_cid),
        "gated count": (outcome.gated_count, proposal.gated_count),
    }
    for name, (mine, theirs) in checks.items():
        if mine != theirs:
            shown = [f"0x{v.hex()}" if isinstance(v, bytes) else repr(v) for v in (mine, theirs)]
            return f"{name} differs: recomputed {shown[0]}, proposed {shown[1]}"
    return stored_problem(store, "reputation table", table.cid, table.encode())


# ------------------------------------------------------------------------------------------
# Settlement and proofs
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    round: int
    gated: tuple[str, ...]
    """Nodes this round put below the initial score (proven: the round is settled)."""
    refreshed: tuple[str, ...]
    """Other nodes below the initial score, proven so they can commit in the next round."""
    transactions: int


def settle_round(
    ledger: Ledger, store: Store, round_id: int, sender: Sender, from_block: int = 0
) -> Settlement:
    """Settle finalized round ``round_id``: prove every node its table puts below the initial
    score (the gated ones first) against the root the round recorded. Idempotent: nodes
    already proven against it are skipped, so a resumed run sends only what is missing."""
    root, latest = ledger.reputation_root()
    if latest != round_id:
        return Settlement(round_id, (), (), 0)  # a later round finalized: this one is settled
    ref = table_ref(ledger, round_id, from_block)
    table = fetch_table(ledger, store, ref)
    if table.root != root:
        raise IntegrityError(f"round {round_id}'s table does not rebuild the ledger's root")
    minimum = ledger.security_params().min_reputation
    need = [n for n, s in table.scores if s < table.initial or minimum > table.initial]
    infos = ledger.node_infos(need)
    todo = [n for n in need if infos[n.lower()].last_settled_round != round_id]
    previous = table_before(ledger, store, round_id, from_block)
    gated = set(table.newly_gated(previous))
    ordered = sorted(todo, key=lambda n: (n not in gated, n.lower()))
    sent = prove(ledger, table, ordered, sender)
    return Settlement(
        round_id,
        tuple(n for n in ordered if n in gated),
        tuple(n for n in ordered if n not in gated),
        sent,
    )


def prove(ledger: Ledger, table: ReputationTable, nodes: Sequence[str], sender: Sender) -> int:
    """Prove ``nodes``' scores in ``table`` (the latest) on chain, ``PROVE_CHUNK`` per
    transaction; returns the number of transactions."""
    items = [(n, table.score(n), table.proof(n)) for n in nodes]
    for start in range(0, len(items), PROVE_CHUNK):
        ledger.prove_reputations(items[start : start + PROVE_CHUNK], sender)
    return (len(items) + PROVE_CHUNK - 1) // PROVE_CHUNK


def latest_table(ledger: Ledger, store: Store, from_block: int = 0) -> ReputationTable:
    """The table of the latest finalized round (the genesis table before any)."""
    _, latest = ledger.reputation_root()
    if latest == 0:
        return ReputationTable.genesis(rules_of(ledger).initial)
    return fetch_table(ledger, store, table_ref(ledger, latest, from_block))


def node_reputations(
    ledger: Ledger, store: Store, nodes: Sequence[str], from_block: int = 0
) -> dict[str, int]:
    """Each node's current reputation (from the latest table), keyed by lower-case address."""
    table = latest_table(ledger, store, from_block)
    return {n.lower(): table.score(n) for n in nodes}


@dataclass
class ReputationBook:
    """Lets ``ChainReader.node_infos`` report each node's current reputation from the latest
    table (the chain itself caches only proven scores). Attach with :func:`attach`.

    The table is read again only when the ledger's latest reputation root changes: a root
    commits to every (node, score) leaf, and the table is checked against it when fetched, so
    one root always names the same table (``node_infos`` runs per batch of a 10,000-node round,
    and finding the table costs several event queries)."""

    store: Store
    from_block: int = 0
    _latest: tuple[tuple[bytes, int], ReputationTable] | None = field(default=None, repr=False)

    def table(self, ledger: Ledger) -> ReputationTable:
        root, latest = ledger.reputation_root()
        if self._latest is not None and self._latest[0] == (root, latest):
            return self._latest[1]
        table = latest_table(ledger, self.store, self.from_block)
        if table.root != root:  # a round finalized in between: read it next time
            return table
        self._latest = ((root, latest), table)
        return table


def attach(ledger: Ledger, store: Store, from_block: int = 0) -> None:
    """Make ``ledger.node_infos`` report current (table) reputations."""
    ledger.reputation_book = ReputationBook(store, from_block)  # type: ignore[attr-defined]
