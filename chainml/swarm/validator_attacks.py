"""Dishonest validators: wrappers of the honest :class:`~chainml.actors.validator.Validator`.

Each keeps the honest actor's key, secret and transactions and changes only what it votes or
whether it reveals (attacks wrap actors; the honest path has no branch for them):

- ``copy``: a lazy validator that never uses a recomputation. It copies a vote it can see (a
  revealed vote of another validator of the round) and otherwise the proposer's, i.e. it
  approves. Under commit-reveal no vote is visible while commits are open, so it can only
  approve blindly, and once votes are visible it can no longer commit.
- ``withhold``: commits its honest verdict and never reveals it (to stall a round, or to see
  the others first). ``forfeitVote`` penalizes it once the reveal deadline has passed
  (:func:`forfeit_withheld`, callable by anyone).
- ``collude``: sides with a tampering aggregator: yes where its own recomputation says no,
  no where it says yes (it wants the forged aggregate in and the honest one out).

The defence is the contracts': hidden votes, a quorum the ledger bounds to a strict majority of
the round's validator snapshot, rejection once quorum is impossible, and the forfeit penalty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from chainml.actors.validator import Validator
from chainml.chain.client import Ledger, Sender
from chainml.chain.errors import ContractRevert
from chainml.chain.types import VoteState
from chainml.protocol.review import Review

log = logging.getLogger(__name__)

VALIDATOR_ATTACKS = ("copy", "withhold", "collude")


class _Wrapped:
    """Delegates everything it does not override to the honest validator it wraps."""

    attack = ""

    def __init__(self, inner: Validator) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _commit(self, proposal_id: int, approve: bool, why: str) -> bool:
        inner = self.inner
        if inner.state(proposal_id) != VoteState.NONE:
            return False
        salt = inner.secret.salt(proposal_id)
        inner.ledger.commit_vote(proposal_id, approve, salt, inner.account)
        log.info("%s validator %s committed %s (%s)", self.attack, inner.address, approve, why)
        return True


class CopyingValidator(_Wrapped):
    """Votes without recomputing: copies a visible vote, else approves (the proposer's vote)."""

    attack = "copy"

    def __init__(self, inner: Validator, peers: Sequence[str]) -> None:
        super().__init__(inner)
        self.peers = [p for p in peers if p.lower() != inner.address.lower()]
        self.copied_from_peers = 0
        """Votes it managed to copy from another validator (0 under commit-reveal)."""
        self.blind = 0
        """Votes it cast blind (approving whatever was proposed)."""

    def visible_vote(self, proposal_id: int) -> bool | None:
        """A vote of another validator that the chain shows (only revealed votes are)."""
        for peer in self.peers:
            vote = self.inner.ledger.vote_of(proposal_id, peer)
            if vote.state == VoteState.REVEALED:
                return vote.approve
        return None

    def commit(self, proposal_id: int, verdict: Review) -> bool:
        del verdict  # never looked at: the lazy validator did no work
        seen = self.visible_vote(proposal_id)
        if seen is None:
            self.blind += 1
            return self._commit(proposal_id, True, "copied the proposer: nothing visible")
        self.copied_from_peers += 1
        return self._commit(proposal_id, seen, "copied a revealed vote")


class WithholdingValidator(_Wrapped):
    """Commits its honest verdict and never reveals it."""

    attack = "withhold"

    def commit(self, proposal_id: int, verdict: Review) -> bool:
        return self.inner.commit(proposal_id, verdict)

    def reveal(self, proposal_id: int) -> bool:
        del proposal_id
        return False


class ColludingValidator(_Wrapped):
    """Votes against its own recomputation: for a forged aggregate, against an honest one."""

    attack = "collude"

    def commit(self, proposal_id: int, verdict: Review) -> bool:
        approve = True if verdict.abstain else not verdict.approve
        return self._commit(proposal_id, approve, f"colluding against '{verdict.reason}'")


def wrap_validators(
    validators: Sequence[Validator], attack: str, count: int
) -> list[Validator | _Wrapped]:
    """The first ``count`` validators made dishonest with ``attack``; the rest unchanged."""
    if attack not in VALIDATOR_ATTACKS:
        raise ValueError(f"unknown validator attack {attack!r}; one of {VALIDATOR_ATTACKS}")
    peers = [v.address for v in validators]
    out: list[Validator | _Wrapped] = []
    for i, v in enumerate(validators):
        if i >= count:
            out.append(v)
        elif attack == "copy":
            out.append(CopyingValidator(v, peers))
        elif attack == "withhold":
            out.append(WithholdingValidator(v))
        else:
            out.append(ColludingValidator(v))
    return out


def composer(attack: str, count: int) -> Callable[[Any], None]:
    """A ``run_swarm(compose=...)`` hook that makes ``count`` of the swarm's validators
    dishonest (the harness's validators are the honest actors it built)."""

    def compose(swarm: Any) -> None:
        swarm.validators = wrap_validators(swarm.validators, attack, count)

    return compose


def forfeit_withheld(
    ledger: Ledger, validators: Sequence[str], sender: Sender, from_block: int = 0
) -> list[tuple[int, str]]:
    """Penalize every committed vote left unrevealed past its reveal deadline, on every
    proposal so far (anyone may; the ledger docks the validator's reputation). Returns the
    (proposal, validator) pairs forfeited."""
    now = int(ledger.w3.eth.get_block("latest")["timestamp"])
    done = []
    for round_id in range(1, ledger.current_round() + 1):
        for event in ledger.proposals(round_id, from_block):
            pid = event.proposal_id
            if now <= ledger.proposal(pid).reveal_deadline:
                continue
            for v in validators:
                if ledger.vote_of(pid, v).state != VoteState.COMMITTED:
                    continue
                try:
                    ledger.forfeit_vote(pid, v, sender)
                except ContractRevert as exc:  # raced with another caller: nothing to do
                    log.warning("forfeit of %s on proposal %d refused: %s", v, pid, exc)
                    continue
                done.append((pid, v))
    return done
