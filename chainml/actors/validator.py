"""A validator: recompute each proposal from chain and IPFS data alone, commit a hidden vote,
reveal it once the commit phase is over.

The recomputation is ``chainml.protocol.review.review`` (a picklable job, so the swarm harness
can run every validator's in its own worker process). The vote's salt is an HMAC under the
validator's own secret (``ValidatorSecret``, a file only it reads), and what the validator
committed to is read back from the chain: on reveal it finds which of yes and no, salted with its
secret, matches its on-chain commitment. So a validator killed between commit and reveal and
started again reveals exactly what it committed, with nothing kept in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chainml.chain.client import Ledger, Sender, sender_address
from chainml.chain.errors import ContractRevert
from chainml.chain.types import RoundStatus, VoteState
from chainml.protocol.review import Review, ReviewJob, ValidatorSecret, review

log = logging.getLogger(__name__)

Reviewer = Callable[[ReviewJob], Review]


@dataclass(frozen=True)
class ValidatorSetup:
    """Where a validator's recomputation reads from (it opens its own connections)."""

    rpc_url: str
    ledger_address: str
    voting_address: str
    store_spec: str
    data_dir: str
    from_block: int = 0


class Validator:
    def __init__(
        self,
        ledger: Ledger,
        account: Sender,
        setup: ValidatorSetup,
        secret: ValidatorSecret | None = None,
        reviewer: Reviewer = review,
    ) -> None:
        self.ledger = ledger
        self.account = account
        self.setup = setup
        self.secret = secret or ValidatorSecret(setup.data_dir, sender_address(account))
        self.reviewer = reviewer

    @property
    def address(self) -> str:
        return sender_address(self.account)

    def review_job(self, proposal_id: int) -> ReviewJob:
        s = self.setup
        return ReviewJob(
            validator=self.address,
            proposal_id=proposal_id,
            rpc_url=s.rpc_url,
            ledger_address=s.ledger_address,
            voting_address=s.voting_address,
            store_spec=s.store_spec,
            data_dir=s.data_dir,
            from_block=s.from_block,
        )

    def state(self, proposal_id: int) -> VoteState:
        return self.ledger.vote_of(proposal_id, self.address).state

    def commit(self, proposal_id: int, verdict: Review) -> bool:
        """Commit ``verdict`` as a hidden vote, unless it abstains or a vote is already in."""
        if verdict.abstain:
            log.warning("validator %s refuses to vote: %s", self.address, verdict.reason)
            return False
        if self.state(proposal_id) != VoteState.NONE:
            return False
        salt = self.secret.salt(proposal_id)
        self.ledger.commit_vote(proposal_id, verdict.approve, salt, self.account)
        log.info(
            "validator %s committed its vote on proposal %d (%s)",
            self.address,
            proposal_id,
            verdict.reason,
        )
        return True

    def committed_vote(self, proposal_id: int) -> bool | None:
        """Which vote this validator's on-chain commitment hides (None: not its secret's)."""
        commitment = self.ledger.vote_of(proposal_id, self.address).commitment
        salt = self.secret.salt(proposal_id)
        for approve in (True, False):
            if self.ledger.vote_hash(proposal_id, self.address, approve, salt) == commitment:
                return approve
        return None

    def reveal(self, proposal_id: int) -> bool:
        """Reveal the committed vote (the caller checks that the commit phase is over)."""
        if self.state(proposal_id) != VoteState.COMMITTED:
            return False
        approve = self.committed_vote(proposal_id)
        if approve is None:
            log.error(
                "validator %s cannot reveal on proposal %d: its secret %s does not open its "
                "commitment (was the secret file replaced?)",
                self.address,
                proposal_id,
                self.secret.path,
            )
            return False
        self.ledger.reveal_vote(proposal_id, approve, self.secret.salt(proposal_id), self.account)
        log.info(
            "validator %s revealed %s on proposal %d",
            self.address,
            "yes" if approve else "no",
            proposal_id,
        )
        return True

    # -- the daemon's tick ---------------------------------------------------------------------

    def step(self) -> int:
        """Vote on the current round's pending proposal and reveal every committed vote whose
        commit phase is over (the current and the previous round's proposals); returns the
        number of transactions sent."""
        ledger = self.ledger
        round_id = ledger.current_round()
        if round_id == 0:
            return 0
        sent = 0
        now = int(ledger.w3.eth.get_block("latest")["timestamp"])
        pending = ledger.pending_proposal(round_id)
        status = ledger.round_info(round_id).status
        if pending and status in (RoundStatus.OPEN, RoundStatus.AGGREGATING):
            view = ledger.proposal(pending)
            if (
                self.state(pending) == VoteState.NONE
                and not view.commit_phase_over
                and self._in_term(round_id)
            ):
                try:
                    sent += self.commit(pending, self.reviewer(self.review_job(pending)))
                except ContractRevert as exc:
                    log.warning("validator %s: vote refused: %s", self.address, exc)
        for event in [
            *ledger.proposals(round_id - 1, self.setup.from_block),
            *ledger.proposals(round_id, self.setup.from_block),
        ]:
            pid = event.proposal_id
            if self.state(pid) != VoteState.COMMITTED:
                continue
            view = ledger.proposal(pid)
            if view.commit_phase_over and now <= view.reveal_deadline:
                try:
                    sent += self.reveal(pid)
                except ContractRevert as exc:
                    log.warning("validator %s: reveal refused: %s", self.address, exc)
        return sent

    def _in_term(self, round_id: int) -> bool:
        return self.ledger.is_validator_for(round_id, self.address)


def validator_secret(data_dir: Path | str, account: Sender, path: Path | None) -> ValidatorSecret:
    """The validator's secret, at ``path`` if given (else under the data directory)."""
    secret = ValidatorSecret(data_dir, sender_address(account))
    if path is not None:
        secret.path = Path(path)
    return secret
