"""Validators: recompute a proposal from chain and IPFS data alone, then vote on it.

``review`` is a top-level function of a picklable job, so each validator's recomputation runs
in its own worker process, with its own chain connection and store handle, sharing nothing
with the aggregator. It is two halves: ``recompute`` (the evidence and the aggregate, which
need only the round, so a validator starts as soon as the challenge window closes, while the
aggregator builds its proposal) and ``judge`` (the comparison with a proposal).

A validator refuses to vote at all (abstains) while any batch's leaves are unavailable: it
cannot check what it cannot see. Its commit-reveal salt comes from its own secret
(``ValidatorSecret``), never from public data such as the run seed. Besides the aggregate it
recomputes the round's reputation table and checks the proposal's reputation root, parent root,
gated count and table CID, and that the table is stored with exactly those bytes; and it
recomputes the round's metrics file (``chainml.protocol.round_metrics``, a pure function of the
evidence and the outcome) and votes no unless the proposal names exactly its CID and the file is
stored with those bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from eth_utils import to_checksum_address

from chainml.aggregate.strategies import strategy_for_rule
from chainml.chain.client import Ledger, http_web3
from chainml.chain.types import Proposal
from chainml.errors import ChainMLError
from chainml.protocol.evidence import gather_round
from chainml.protocol.recompute import MIN_REPUTATION, AggregateOutcome, compute_aggregate
from chainml.protocol.round_metrics import RoundMetrics, check_metrics
from chainml.protocol.settlement import check_proposal
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import StoreUnavailableError, shared_store

SECRETS_DIR = "validator-secrets"


@dataclass(frozen=True)
class ReviewJob:
    validator: str
    proposal_id: int
    rpc_url: str
    ledger_address: str
    voting_address: str
    store_spec: str
    data_dir: str
    from_block: int = 0
    round: int = 0
    """The round to recompute (:func:`recompute`); :func:`review` reads it from the proposal."""


@dataclass(frozen=True)
class Review:
    validator: str
    proposal_id: int
    approve: bool
    reason: str
    abstain: bool = False
    """Cast no vote: the round's data is not (yet) available to check."""


@dataclass(frozen=True)
class Recomputation:
    """What one validator recomputed for a round from chain and IPFS data: the outcome, or the
    verdict any proposal of the round gets (the data is unavailable or unusable)."""

    validator: str
    round: int
    outcome: AggregateOutcome | None
    reject: str | None = None
    abstain: str | None = None
    metrics: RoundMetrics | None = None
    """The round's metrics file, recomputed with the outcome."""


@cache
def _ledger(rpc_url: str, ledger_address: str, voting_address: str) -> Ledger:
    w3 = http_web3(rpc_url)
    return Ledger(w3, ledger_address, voting_address)


def _job_ledger(job: ReviewJob) -> Ledger:
    return _ledger(job.rpc_url, job.ledger_address, job.voting_address)


def review(job: ReviewJob) -> Review:
    """Approve only if the recomputed aggregate and node lists match the proposal exactly."""
    proposal = _job_ledger(job).proposal(job.proposal_id)
    return judge(job, recompute(replace(job, round=proposal.round)))


def recompute(job: ReviewJob) -> Recomputation:
    """The expensive half of a review, which needs only the round: gather the evidence and
    recompute the aggregate with the recipe's rule. A validator can run it as soon as the
    round's challenge window is over, while the aggregator builds its proposal."""
    ledger = _job_ledger(job)
    store = shared_store(job.store_spec, job.data_dir)
    minimum = ledger.round_info(job.round).min_reputation
    if minimum != MIN_REPUTATION:
        reason = f"the round gates at reputation {minimum}, the aggregate rule at {MIN_REPUTATION}"
        return Recomputation(job.validator, job.round, None, reject=reason)
    try:
        evidence = gather_round(ledger, store, job.round, job.from_block)
        missing = [r.reason for r in evidence.rejected if r.unavailable]
        if missing:
            return Recomputation(job.validator, job.round, None, abstain=missing[0])
        outcome = compute_aggregate(evidence, store)
    except StoreUnavailableError:
        raise  # an outage is not evidence against the proposal: stop, rerun to resume
    except ChainMLError as exc:
        return Recomputation(job.validator, job.round, None, reject=f"cannot recompute: {exc}")
    return Recomputation(
        job.validator, job.round, outcome, metrics=RoundMetrics.of(evidence, outcome)
    )


def judge(job: ReviewJob, done: Recomputation) -> Review:
    """The cheap half: compare proposal ``job.proposal_id`` with the recomputation of its
    round (the aggregate CID, node lists and counts, the rule, the reputation fields, the
    metrics file)."""
    ledger = _job_ledger(job)
    store = shared_store(job.store_spec, job.data_dir)
    proposal = ledger.proposal(job.proposal_id)
    round_id = proposal.round

    def verdict(approve: bool, reason: str, abstain: bool = False) -> Review:
        return Review(job.validator, job.proposal_id, approve, reason, abstain)

    if done.round != round_id:
        return verdict(False, f"recomputed round {done.round}, the proposal is for {round_id}")
    if done.abstain is not None:
        return verdict(False, done.abstain, abstain=True)
    if done.reject is not None or done.outcome is None or done.metrics is None:
        return verdict(False, done.reject or "nothing was recomputed")
    outcome = done.outcome
    try:
        rule = strategy_for_rule(proposal.rule_id)
    except ChainMLError as exc:
        return verdict(False, f"cannot recompute: {exc}")
    if rule.rule_id != outcome.rule_id:
        return verdict(
            False,
            f"cannot recompute: rule {rule.name!r} is not the recipe's aggregation rule "
            f"{outcome.recipe.aggregation!r}",
        )
    proposed = onchain_to_str(*proposal.aggregate)
    checks = {
        "aggregate CID": (outcome.weights_cid, proposed),
        "included root": (outcome.included_root, proposal.included_root),
        "excluded root": (outcome.excluded_root, proposal.excluded_root),
        "included count": (len(outcome.included), proposal.included_count),
        "excluded count": (len(outcome.excluded), proposal.excluded_count),
    }
    for name, (mine, theirs) in checks.items():
        if mine != theirs:
            return verdict(False, f"{name} differs: {mine!r} vs {theirs!r}")
    full = _proposal_input(ledger, round_id, job.proposal_id, job.from_block)
    if full is None:
        return verdict(False, "no ProposalSubmitted event")
    mismatch = check_proposal(store, outcome, full) or check_metrics(store, done.metrics, full)
    if mismatch is not None:
        return verdict(False, mismatch)
    return verdict(True, f"aggregate {proposed} reproduced")


def _proposal_input(
    ledger: Ledger, round_id: int, proposal_id: int, from_block: int
) -> Proposal | None:
    """The proposal's full input (list and table CIDs), from its ``ProposalSubmitted`` event."""
    for event in ledger.proposals(round_id, from_block):
        if event.proposal_id == proposal_id:
            return event.proposal
    return None


class ValidatorSecret:
    """A validator's own 32-byte secret, kept in a file only it reads (created on first use,
    so a resumed run reveals with the salts it committed with)."""

    def __init__(self, data_dir: Path | str, validator: str) -> None:
        self.validator = to_checksum_address(validator)
        self.path = Path(data_dir) / SECRETS_DIR / f"{self.validator}.key"

    def key(self) -> bytes:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
            try:
                os.link(tmp, self.path)  # first writer wins; never replace a used secret
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        key = self.path.read_bytes()
        if len(key) != 32:
            raise ChainMLError(f"validator secret {self.path} is corrupt (not 32 bytes)")
        return key

    def salt(self, proposal_id: int) -> bytes:
        return vote_salt(self.validator, proposal_id, self.key())


def vote_salt(validator: str, proposal_id: int, secret: bytes) -> bytes:
    """The commit-reveal salt: HMAC-SHA256 under the validator's own secret, so it is
    unguessable without that secret and stable on resume."""
    message = (
        b"chainml-vote-salt"
        + bytes.fromhex(to_checksum_address(validator)[2:])
        + proposal_id.to_bytes(32, "big")
    )
    return hmac.new(secret, message, hashlib.sha256).digest()
