"""The aggregator: after the commit phase, propose the round's aggregate for a vote."""

from __future__ import annotations

from collections.abc import Callable

from chainml.aggregate.strategies import Strategy
from chainml.chain.client import Ledger
from chainml.chain.types import Proposal
from chainml.errors import IntegrityError
from chainml.storage.cid import cid_str, cid_to_onchain
from chainml.storage.store import Store
from chainml.swarm.evidence import RoundEvidence, gather_round
from chainml.swarm.payloads import encode_node_list
from chainml.swarm.recompute import AggregateOutcome, compute_aggregate

MetricsFn = Callable[[RoundEvidence, AggregateOutcome], bytes]


class Aggregator:
    def __init__(self, ledger: Ledger, store: Store, account: str, strategy: Strategy) -> None:
        self.ledger = ledger
        self.store = store
        self.account = account
        self.strategy = strategy

    def build(self, round_id: int, from_block: int = 0) -> tuple[RoundEvidence, AggregateOutcome]:
        evidence = gather_round(self.ledger, self.store, round_id, from_block)
        return evidence, compute_aggregate(evidence, self.store, self.strategy)

    def propose(
        self,
        round_id: int,
        evidence: RoundEvidence,
        outcome: AggregateOutcome,
        metrics: bytes,
        tamper: Callable[[bytes], bytes] | None = None,
    ) -> int:
        """Store the aggregate, its node lists and metrics on IPFS; propose them on chain.

        ``tamper`` exists for the fault-injection suite: a dishonest aggregator publishes other
        weights than the rule produces, and validators must vote it down.
        """
        weights = tamper(outcome.weights) if tamper else outcome.weights
        weights_cid = self.store.put(weights)
        if tamper is None and cid_str(weights_cid) != outcome.weights_cid:
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
        )
        return self.ledger.propose(proposal, self.account)
