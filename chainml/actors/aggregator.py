"""The aggregator: opens rounds, closes their commit phase, proposes the round's aggregate,
concludes the vote and settles reputation, each through its own transactions.

What it proposes is ``chainml.protocol.recompute.compute_aggregate`` of the round's evidence, the
same pure function every validator and ``chainml verify`` run. It stores the new version file,
the included and excluded node lists and the round's metrics file on IPFS and proposes their
CIDs. The metrics file is ``chainml.protocol.round_metrics.RoundMetrics`` of the evidence and
the outcome, which validators recompute too: the aggregator has no say in its content.
A dishonest aggregator is a wrapper around this one (``chainml.swarm.aggregator``), not a
branch in it.

As a daemon (``chainml aggregator run``) it derives the round's phase from the chain on every
new block, so a restart carries on from wherever the chain is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chainml.aggregate.strategies import Strategy, strategy_for_recipe
from chainml.chain.client import Ledger, Sender, sender_address
from chainml.chain.errors import ContractRevert
from chainml.chain.records import ProposalSubmitted
from chainml.chain.types import OnchainCid, Proposal, ProposalStatus, RoundStatus
from chainml.errors import ChainMLError, IntegrityError
from chainml.protocol import settlement
from chainml.protocol.codecs import decode_node_list, encode_node_list
from chainml.protocol.evidence import RoundEvidence, gather_round
from chainml.protocol.payloads import version_recipe
from chainml.protocol.recompute import AggregateOutcome, compute_aggregate
from chainml.protocol.round_metrics import RoundMetrics
from chainml.storage.cid import cid_str, cid_to_onchain, onchain_to_str
from chainml.storage.store import Store

log = logging.getLogger(__name__)

SETTLE_CHUNK = 100


@dataclass(frozen=True)
class Conclusion:
    """How a vote stands: ``finalized`` (with the new version), ``rejected`` or ``waiting``."""

    state: str
    version: int | None = None


class Aggregator:
    def __init__(
        self,
        ledger: Ledger,
        store: Store,
        account: Sender,
        strategy: Strategy | None = None,
        *,
        from_block: int = 0,
        close_at: int | None = None,
        max_rounds: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.account = account
        self.strategy = strategy
        """None: the strategy the base version's recipe names (what validators check)."""
        self.from_block = from_block
        self.close_at = close_at
        """Close the commit phase early once this many commitments are in (else: deadline)."""
        self.max_rounds = max_rounds

    @property
    def address(self) -> str:
        return sender_address(self.account)

    # -- the round's steps ------------------------------------------------------------------

    def open_round(self) -> int:
        """Open the next round on the current version (its parameters are the ledger's)."""
        round_id = self.ledger.open_round(self.account)
        log.info("aggregator opened round %d", round_id)
        return round_id

    def close_commit_phase(self, round_id: int) -> None:
        self.ledger.close_commit_phase(round_id, self.account)

    def close_round(self, round_id: int) -> None:
        self.ledger.close_round(round_id, self.account)
        log.info("aggregator closed round %d without a new version", round_id)

    def build(self, round_id: int, from_block: int = 0) -> tuple[RoundEvidence, AggregateOutcome]:
        evidence = gather_round(self.ledger, self.store, round_id, from_block or self.from_block)
        strategy = self.strategy or self._recipe_strategy(evidence.base_version)
        return evidence, compute_aggregate(evidence, self.store, strategy)

    def _recipe_strategy(self, version: int) -> Strategy:
        cid = onchain_to_str(*self.ledger.version(version).weights)
        return strategy_for_recipe(version_recipe(self.store.get(cid)))

    def propose(
        self,
        round_id: int,
        evidence: RoundEvidence,
        outcome: AggregateOutcome,
        metrics: bytes | None = None,
    ) -> int:
        """Store the aggregate, its node lists and metrics file on IPFS; propose them on chain.

        ``metrics`` defaults to the round's metrics file (what validators expect); other bytes
        are a forgery, which only an attack wrapper passes (``chainml.swarm.aggregator``)."""
        if metrics is None:
            metrics = RoundMetrics.of(evidence, outcome).encode()
        weights_cid = self.store.put(outcome.weights)
        if cid_str(weights_cid) != outcome.weights_cid:
            raise IntegrityError(
                f"the store returned {cid_str(weights_cid)} for the aggregate, "
                f"expected {outcome.weights_cid}"
            )
        included_cid = self.store.put(encode_node_list(round_id, "included", outcome.included))
        excluded_cid = self.store.put(encode_node_list(round_id, "excluded", outcome.excluded))
        metrics_cid = self.store.put(metrics)
        proposal = Proposal(
            round=round_id,
            aggregate=cid_to_onchain(weights_cid),
            included_root=outcome.included_root,
            included_count=len(outcome.included),
            excluded_root=outcome.excluded_root,
            excluded_count=len(outcome.excluded),
            metrics=cid_to_onchain(metrics_cid),
            included_list=cid_to_onchain(included_cid),
            excluded_list=cid_to_onchain(excluded_cid),
            rule_id=outcome.rule_id,
            **settlement.proposal_fields(self.store, outcome),  # the reputation table (GAS)
        )
        proposal_id = self.ledger.propose(proposal, self.account)
        log.info(
            "aggregator proposed %s for round %d (proposal %d)",
            outcome.weights_cid,
            round_id,
            proposal_id,
        )
        return proposal_id

    def conclude(self, proposal_id: int) -> Conclusion:
        """Finalize at quorum, reject once quorum is impossible or expired, else wait."""
        view = self.ledger.proposal(proposal_id)
        if view.status != ProposalStatus.PENDING:
            return Conclusion(view.status.name.lower())
        if view.yes >= view.required:
            version = self.ledger.finalize(proposal_id, self.account)
            log.info("aggregator finalized proposal %d as version %d", proposal_id, version)
            return Conclusion("finalized", version)
        try:
            self.ledger.reject(proposal_id, self.account)
        except ContractRevert:
            return Conclusion("waiting")  # quorum still possible on paper: votes to come
        log.warning("proposal %d was rejected", proposal_id)
        return Conclusion("rejected")

    def accepted_proposal(self, round_id: int) -> ProposalSubmitted:
        """The accepted proposal's full input (with list CIDs), from its ProposalSubmitted event."""
        for event in self.ledger.proposals(round_id, self.from_block):
            if self.ledger.proposal(event.proposal_id).status == ProposalStatus.ACCEPTED:
                return event
        raise ChainMLError(f"round {round_id} is finalized but has no accepted proposal")

    def node_list(self, cid: OnchainCid) -> list[str]:
        return decode_node_list(self.store.get(onchain_to_str(*cid)))

    def settle(self, round_id: int) -> int:
        """Move reputation for the round's voted lists, for nodes not settled yet; returns how
        many nodes it settled (in chunks, so a restart resumes after the last chunk)."""
        done = settlement.settle_round(
            self.ledger, self.store, round_id, self.account, self.from_block
        )  # the reputation root is on chain already: prove only nodes below the initial score
        return len(done.gated) + len(done.refreshed)

    # -- the daemon's tick -----------------------------------------------------------------

    def step(self) -> str:
        """One look at the chain and at most one phase's transactions; returns what it did."""
        ledger = self.ledger
        round_id = ledger.current_round()
        info = ledger.round_info(round_id) if round_id else None
        status = info.status if info else RoundStatus.NONE
        now = int(ledger.w3.eth.get_block("latest")["timestamp"])
        if status == RoundStatus.FINALIZED and self.settle(round_id):
            log.info("aggregator settled reputation for round %d", round_id)
            return "settled"
        if status in (RoundStatus.NONE, RoundStatus.FINALIZED, RoundStatus.CLOSED):
            if self.max_rounds is not None and round_id >= self.max_rounds:
                return "idle"
            self.open_round()
            return "opened"
        assert info is not None
        deadline_passed = now > info.commit_deadline
        commits = info.commit_count
        if status == RoundStatus.OPEN and not deadline_passed:
            if (
                self.close_at is not None
                and commits >= max(self.close_at, 1)
                and commits >= info.min_commitments
            ):
                self.close_commit_phase(round_id)
                log.info("aggregator closed the commit phase of round %d (%d)", round_id, commits)
                return "closed commit phase"
            return "waiting for commitments"
        if commits < info.min_commitments:
            self.close_round(round_id)
            return "closed round"
        if now < info.challenge_end:
            return "waiting for the challenge window"
        pending = ledger.pending_proposal(round_id)
        if pending:
            return self.conclude(pending).state
        if info.proposal_count >= info.max_proposals:
            self.close_round(round_id)
            return "closed round"
        evidence, outcome = self.build(round_id)
        self.propose(round_id, evidence, outcome)
        return "proposed"
