"""The gateway: gets nodes' signed commitments onto the ledger, relayed or as Merkle batches.

- **relayed:** the gateway sends chunks of signed commitments, each verified on chain;
- **batched:** the gateway puts the signed leaves on IPFS and posts only their Merkle root,
  with a bond the challenger can slash for any invalid leaf.

(In **direct** mode every node sends its own transaction: ``NodeClient.commit_direct``.)

The gateway first drops, and logs, what the chain would refuse: a commitment for another round
or base version, and a node below the round's reputation minimum (a bad item reverts a whole
relayed chunk, and a bad batch leaf costs the gateway its bond). Submission is idempotent: a
commitment already on chain is never sent again, so a restarted gateway resubmits only what
is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from chainml.actors.inbox import Inbox
from chainml.chain.client import Ledger, Sender, sender_address
from chainml.chain.eip712 import SignedCommitment
from chainml.chain.types import RoundStatus
from chainml.errors import ConfigError
from chainml.protocol.codecs import encode_leaves
from chainml.protocol.evidence import gather_round
from chainml.storage.cid import cid_to_onchain
from chainml.storage.store import Store

log = logging.getLogger(__name__)

GATEWAY_MODES = ("relayed", "batched")
BOND_UNITS = 4
"""A batched gateway keeps this many bond units deposited (one is at stake per open batch)."""


@dataclass(frozen=True)
class Submission:
    transactions: int
    commitments: int


class Gateway:
    def __init__(
        self,
        ledger: Ledger,
        store: Store,
        account: Sender,
        mode: str,
        from_block: int = 0,
        inbox: Inbox | None = None,
        chunk: int = 256,
    ) -> None:
        if mode not in (*GATEWAY_MODES, "direct"):
            raise ConfigError(f"unknown gateway mode {mode!r}: use relayed or batched")
        self.ledger = ledger
        self.store = store
        self.account = account
        self.mode = mode
        self.from_block = from_block
        self.inbox = inbox
        self.chunk = chunk

    @property
    def address(self) -> str:
        return sender_address(self.account)

    def ensure_bond(self) -> int:
        """Batched mode: top the bond up to ``BOND_UNITS`` units; returns the wei deposited."""
        required = self.ledger.security_params().gateway_bond
        bond, _ = self.ledger.bond_of(self.address)
        if self.mode != "batched" or bond >= required:
            return 0
        self.ledger.deposit_bond(required * BOND_UNITS - bond, self.account)
        return required * BOND_UNITS - bond

    def admit(
        self,
        signed: Sequence[SignedCommitment],
        round_id: int,
        base_version: int,
        min_reputation: int,
    ) -> list[SignedCommitment]:
        """The commitments the chain would accept, in the given order; the rest are logged."""
        reps = self.ledger.node_infos([s.commitment.node for s in signed])
        out = []
        for s in signed:
            c = s.commitment
            if reps[c.node.lower()].reputation < min_reputation:
                log.info("gateway skips node %s: reputation below %d", c.node, min_reputation)
            elif c.round != round_id or c.base_version != base_version:
                log.warning(
                    "gateway drops node %s's commitment (round %d, base %d)",
                    c.node,
                    c.round,
                    c.base_version,
                )
            else:
                out.append(s)
        return out

    def submit(
        self, round_id: int, base_version: int, signed: Sequence[SignedCommitment], chunk: int
    ) -> Submission:
        """Put ``signed`` on chain in this gateway's mode, in chunks of ``chunk``."""
        if not signed:
            return Submission(0, 0)
        if self.mode not in GATEWAY_MODES:
            raise ConfigError("in direct mode nodes send their own commitments")
        chunks = [signed[i : i + chunk] for i in range(0, len(signed), chunk)]
        if self.mode == "relayed":
            for part in chunks:
                self.ledger.commit_relayed(round_id, base_version, part, self.account)
        else:  # every leaves file on IPFS first, then all the roots in one JSON-RPC batch
            batches = [
                (part, cid_to_onchain(self.store.put(encode_leaves(round_id, part))))
                for part in chunks
            ]
            self.ledger.post_batches(round_id, batches, self.account)
        return Submission(len(chunks), len(signed))

    # -- the daemon's tick ---------------------------------------------------------------------

    def step(self) -> Submission:
        """Submit every inbox delivery for the open round that is not on chain yet."""
        if self.inbox is None:
            raise ConfigError("this gateway has no inbox to read commitments from")
        ledger = self.ledger
        round_id = ledger.current_round()
        if round_id == 0:
            return Submission(0, 0)
        info = ledger.round_info(round_id)
        now = int(ledger.w3.eth.get_block("latest")["timestamp"])
        if info.status != RoundStatus.OPEN or now >= info.commit_deadline:
            self.inbox.discard_before(round_id + 1)
            return Submission(0, 0)
        delivered = self.inbox.pending(round_id)
        if not delivered:
            return Submission(0, 0)
        on_chain = {
            u.node.lower()
            for u in gather_round(ledger, self.store, round_id, self.from_block).updates
        }
        fresh = [s for s in delivered if s.commitment.node.lower() not in on_chain]
        if not fresh:
            return Submission(0, 0)
        base = info.base_version
        admitted = self.admit(fresh, round_id, base, info.min_reputation)
        done = self.submit(round_id, base, admitted, self.chunk)
        if done.commitments:
            log.info(
                "gateway submitted %d commitments for round %d in %d %s transactions",
                done.commitments,
                round_id,
                done.transactions,
                self.mode,
            )
        return done
