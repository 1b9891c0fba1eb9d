"""The challenger: scans every batch of a round and challenges each invalid leaf on chain.

Batched mode is optimistic: the ledger counts a gateway's leaves unless someone proves one
invalid within the challenge window. This role is that someone. It fetches each batch's leaves
file, rebuilds the posted tree, checks every leaf exactly as the contract's challenge does
(signature, round, base version, a registered and active node behind the posting gateway, the
round's minimum reputation, no direct commitment of the same node) and sends ``challengeLeaf``
for each fault. A successful challenge voids the leaf, slashes the gateway's bond and credits
this challenger a reward. Idempotent: voided leaves and closed windows are skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chainml.chain.client import Ledger, Sender
from chainml.chain.errors import ContractRevert
from chainml.chain.types import RoundStatus
from chainml.errors import IntegrityError, StorageError
from chainml.protocol.codecs import decode_leaves
from chainml.protocol.evidence import _leaf_fault
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenge:
    batch_id: int
    index: int
    node: str
    reason: str


class Challenger:
    """One challenger account watching the ledger's batches."""

    def __init__(self, ledger: Ledger, store: Store, account: Sender, from_block: int = 0) -> None:
        self.ledger = ledger
        self.store = store
        self.account = account
        self.from_block = from_block
        self._checked: set[int] = set()
        """Batches this process has scanned (only for logging: the chain decides the rest)."""

    def step(self) -> list[Challenge]:
        """The daemon's tick: scan the current round while its batches can be challenged."""
        round_id = self.ledger.current_round()
        if round_id == 0:
            return []
        status = self.ledger.round_info(round_id).status
        if status not in (RoundStatus.OPEN, RoundStatus.AGGREGATING):
            return []
        return self.scan(round_id)

    def scan(self, round_id: int) -> list[Challenge]:
        """Challenge every invalid leaf of ``round_id``'s open batches; returns what it voided."""
        ledger = self.ledger
        info = ledger.round_info(round_id)
        base_version = info.base_version
        minimum = info.min_reputation
        now = int(ledger.w3.eth.get_block("latest")["timestamp"])
        done: list[Challenge] = []
        for batch in ledger.batches(round_id, self.from_block):
            batch_id = batch.batch_id
            if now + 1 >= batch.challenge_deadline:
                continue  # the next block could no longer challenge
            cid = onchain_to_str(*batch.leaves)
            try:
                file_round, leaves = decode_leaves(self.store.get(cid))
            except (IntegrityError, StorageError) as exc:
                log.warning("challenger cannot read batch %d's leaves %s: %s", batch_id, cid, exc)
                continue
            tree = ledger.batch_tree(leaves) if leaves else None
            if tree is None or tree.root != batch.root or file_round != round_id:
                log.warning("batch %d's leaves file does not rebuild its root", batch_id)
                continue
            voided = {e.leaf for e in ledger.voided_leaves(batch_id, self.from_block)}
            before = len(done)
            infos = ledger.node_infos([s.commitment.node for s in leaves])
            for index, signed in enumerate(leaves):
                c = signed.commitment
                leaf = tree.leaves[index]
                if leaf in voided:
                    continue
                reason = _leaf_fault(ledger, signed, round_id, base_version, False)
                node = infos[c.node.lower()]
                if reason is None and not (node.registered and node.active):
                    reason = "node not registered or not active"
                if reason is None and node.gateway.lower() != batch.gateway.lower():
                    reason = "node is not behind this gateway"
                if reason is None and node.reputation < minimum:
                    reason = f"reputation {node.reputation} below {minimum}"
                if reason is None and node.last_commit_round == round_id:
                    reason = "node also committed directly"
                if reason is None:
                    continue
                try:
                    ledger.challenge_leaf(batch_id, signed, tree.proof(index), self.account)
                except ContractRevert as exc:
                    log.warning("challenge of batch %d leaf %d refused: %s", batch_id, index, exc)
                    continue
                voided.add(leaf)
                done.append(Challenge(batch_id, index, c.node, reason))
                log.warning("challenger voided leaf %d of batch %d: %s", index, batch_id, reason)
            if batch_id not in self._checked:
                self._checked.add(batch_id)
                log.info(
                    "challenger checked batch %d of round %d: %d leaves, %d voided now",
                    batch_id,
                    round_id,
                    len(leaves),
                    len(done) - before,
                )
        return done
