"""The swarm harness's round loop: drive every round through its phases, resuming from chain
state. The parties are actors (``chainml.actors``) that act through their own accounts; the
harness runs the simulated devices, feeds the actors in phase order and owns the local clock.

Each call of ``Swarm.run`` looks at the chain, not at memory: a round that is open gets its
missing commitments, an aggregating round gets its proposal and votes, a finalized round gets
its reputation settled and its row written. So a SIGKILL at any point followed by the same
command continues where the chain is, never commits twice, and loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import requests
from eth_account import Account
from eth_utils import keccak

from chainml.actors.challenger import Challenger
from chainml.actors.gateway import Gateway
from chainml.actors.node import commit_direct_many, fund_accounts
from chainml.actors.validator import Validator, ValidatorSetup
from chainml.aggregate.strategies import strategy_named
from chainml.chain.types import OnchainCid, Proposal, ProposalStatus, RoundStatus
from chainml.errors import ChainError, ChainMLError
from chainml.meta.tasks import get_family
from chainml.protocol.evidence import RoundEvidence, gather_round
from chainml.protocol.gas import round_gas
from chainml.protocol.payloads import decode_node_list, decode_version, version_recipe
from chainml.protocol.review import Review, judge, recompute, review
from chainml.storage.cid import onchain_to_str
from chainml.swarm.aggregator import Aggregator, TamperingAggregator
from chainml.swarm.attacks import NODE_ATTACKS, adversary_indices
from chainml.swarm.config import SwarmConfig, bind_run_dir
from chainml.swarm.executor import Executor, one_thread_per_worker
from chainml.swarm.fleet import Fleet
from chainml.swarm.metrics import RunLog, event_summary, observations
from chainml.swarm.node_job import NodeJob, NodeOutcome, node_config, run_node
from chainml.swarm.services import Services

log = logging.getLogger(__name__)

SETTLE_CHUNK = 100
EVAL_INNER_LR = 0.01
"""Held-out evaluation adapts as MAML's evaluation does (alpha = 0.01, full batch)."""
_CONNECTION_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: how far the current round is."""


def cid_text(value: OnchainCid | None) -> str:
    return onchain_to_str(*value) if value is not None else ""


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


@dataclass
class RoundTimes:
    adapt: float = 0.0
    ipfs: float = 0.0
    chain: float = 0.0
    aggregate: float = 0.0
    validate: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict[str, float]:
        total = time.perf_counter() - self.started
        return {
            "adapt": round(self.adapt, 4),
            "ipfs": round(self.ipfs, 4),
            "chain": round(self.chain, 4),
            "aggregate": round(self.aggregate, 4),
            "validate": round(self.validate, 4),
            "total": round(total, 4),
        }


class Swarm:
    """One run: a config, a run directory, the services it talks to and an executor.

    The swarm is a harness. The parties are actor objects (``chainml.actors``), each acting
    through its own account: the aggregator opens, closes and proposes, the gateway submits,
    the challenger challenges, every validator commits and reveals its own vote. The harness
    runs the simulated devices, feeds the actors in phase order, chooses who is dishonest
    (attacks wrap actors or devices) and moves the local chain's clock.
    """

    def __init__(
        self,
        config: SwarmConfig,
        services: Services,
        run_dir: Path,
        executor: Executor,
        progress: Progress = _no_progress,
    ) -> None:
        bind_run_dir(run_dir, config)
        self.config = config
        self.s = services
        self.run_dir = run_dir
        self.executor = executor
        self.progress = progress
        self.fleet = Fleet(config)
        self.log = RunLog(run_dir)
        self.arch_id = get_family(config.task).default_arch
        self.strategy = strategy_named(config.aggregation)
        self.from_block = services.deployments.block_number
        honest = Aggregator(
            services.ledger,
            services.store,
            services.aggregator,
            self.strategy,
            from_block=self.from_block,
        )
        # The bad aggregator is the honest actor behind a wrapper that forges its first
        # proposal of every round (chainml.swarm.aggregator).
        self.aggregator: Aggregator | TamperingAggregator = (
            TamperingAggregator(honest) if config.attack == "bad_aggregator" else honest
        )
        self.gateway = Gateway(
            services.ledger, services.store, services.gateway, config.mode, self.from_block
        )
        d = services.deployments
        setup = ValidatorSetup(
            rpc_url=services.rpc_url,
            ledger_address=d.address("ChainMLLedger"),
            voting_address=d.address("ChainMLVoting"),
            store_spec=services.store_spec,
            data_dir=str(services.data_dir),
            from_block=self.from_block,
        )
        self.validators = [Validator(services.ledger, v, setup) for v in services.validators]
        # The challenger is its own party with its own key (it earns the challenge rewards).
        self.challenger_account = Account.from_key(keccak(b"chainml-challenger-%d" % config.seed))
        self.challenger = Challenger(
            services.ledger, services.store, self.challenger_account, self.from_block
        )
        self.adversaries = adversary_indices(config.nodes, config.adversaries, config.seed)
        node_attack = config.attack in NODE_ATTACKS
        self.attacks = {i: config.attack for i in self.adversaries} if node_attack else {}
        self.sybil_leader = (
            min(self.adversaries) if config.attack == "sybil" and self.adversaries else None
        )
        self._outcomes: dict[int, list[NodeOutcome]] = {}
        self._commits: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._observed: tuple[tuple[int, str], dict[str, Any]] | None = None
        """The last observation (:meth:`observe`) and the (round, weights CID) it is of."""
        # Node steps must give the same bits in any process; and the parent's aggregation
        # runs beside the workers' recomputations, so one BLAS thread here too.
        one_thread_per_worker()

    # -- the loop -------------------------------------------------------------------------

    def run(self, on_round: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """Run (or resume) until the configured number of rounds is done; returns round rows.

        ``on_round(round_id, rounds_done)`` is called as each round starts (for progress bars).
        Losing the chain's RPC connection raises a one-line ``ChainError``; rerunning the same
        command resumes from the chain's state.
        """
        try:
            return self._run(on_round)
        except _CONNECTION_ERRORS as exc:
            raise ChainError(
                f"lost the chain at {self.s.rpc_url} ({type(exc).__name__}); restart it "
                "(`chainml chain up`) and rerun the same command to resume"
            ) from None

    def _run(self, on_round: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
        self.log.clean_orphans()
        self.ensure_registered()
        while len(done := self.log.completed_rounds()) < self.config.rounds:
            round_id = self.current_or_new_round()
            if on_round:
                on_round(round_id, len(done))
            self.drive(round_id)
        return sorted(self.log.completed_rounds().values(), key=lambda r: r["round"])

    def current_or_new_round(self) -> int:
        ledger = self.s.ledger
        current = ledger.current_round()
        done = self.log.completed_rounds()
        if current and current not in done:
            status = ledger.round_info(current).status
            # An unfinished round is always carried on; a finished one only if this run
            # opened it (it crashed before writing the row), not if another run did.
            if status in (RoundStatus.OPEN, RoundStatus.AGGREGATING) or (
                current in self.log.opened_rounds()
            ):
                self.log.mark_opened(current)
                return current
        # Quorum, windows and minimums are the ledger's (set at deployment), never ours.
        round_id = self.aggregator.open_round()
        self.log.mark_opened(round_id)
        return round_id

    def drive(self, round_id: int) -> None:
        """Take one round from whatever phase it is in to its row in the run log."""
        times = RoundTimes()
        ledger = self.s.ledger
        status = ledger.round_info(round_id).status
        if status == RoundStatus.OPEN:
            self.commit_phase(round_id, times)
            status = ledger.round_info(round_id).status
        while status == RoundStatus.AGGREGATING:
            info = ledger.round_info(round_id)
            if info.proposal_count >= info.max_proposals and not info.proposal_pending:
                self.aggregator.close_round(round_id)
            else:
                self.vote_phase(round_id, times)
            status = ledger.round_info(round_id).status
        if status == RoundStatus.FINALIZED:
            self.settle(round_id, times)
        self.s.checkpoint()
        self.write_row(round_id, status, times)

    # -- phases ---------------------------------------------------------------------------

    def ensure_registered(self) -> None:
        addresses = [n.address for n in self.fleet.nodes]
        infos = self.s.ledger.node_infos(addresses)
        missing = [a for a in addresses if not infos[a.lower()].registered]
        if missing:
            profiles = [(b"\x00" * 32, 0x55)] * len(missing)
            self.s.ledger.register_nodes(missing, profiles, self.s.admin, gateway=self.s.gateway)
        ledger = self.s.ledger
        if self.config.mode == "batched":
            self.gateway.ensure_bond()
            fund_accounts(self.s.w3, self.s.admin, [self.challenger_account.address])
            ledger.tx.resync(self.s.admin)
        self.s.checkpoint()

    def node_outcomes(
        self, round_id: int, base_version: int, weights_cid: str
    ) -> list[NodeOutcome]:
        """Every participating node's round (recomputed identically on resume)."""
        if round_id in self._outcomes:
            return self._outcomes[round_id]
        dropped = self.fleet.dropped(round_id)
        nodes = [n for n in self.fleet.nodes if n.index not in dropped]
        infos = self.s.ledger.node_infos([n.address for n in nodes])
        cfg = self.config
        job_config = node_config(round_id)  # the recipe itself comes from the base version
        calibrations = self.calibrations(round_id, weights_cid)
        jobs = [
            NodeJob(
                index=n.index,
                key=bytes(n.account.key),
                round=round_id,
                base_version=base_version,
                weights_cid=weights_cid,
                store_spec=self.s.store_spec,
                data_dir=str(self.s.data_dir),
                task=cfg.task,
                arch_id=self.arch_id,
                seed=cfg.seed,
                node=job_config,
                profile=n.profile,
                domain_separator=self.s.ledger.domain_separator,
                nonce=infos[n.address.lower()].next_nonce,
                attack=self.attacks.get(n.index),
                sybil_leader=self.sybil_leader,
                calibration=calibrations.get(n.address.lower()),
            )
            for n in nodes
        ]
        outcomes = []
        for done, outcome in enumerate(self.executor.map(run_node, jobs), start=1):
            outcomes.append(outcome)
            self.progress("devices adapt", done, len(jobs))
        self._outcomes = {round_id: outcomes}
        return outcomes

    def calibrations(self, round_id: int, weights_cid: str) -> dict[str, tuple[int, str]]:
        """Event-driven spiking devices (the version's recipe says so): each node's last
        committed round before ``round_id`` and that round's base version CID, read from the
        chain. A device's state is a function of these and its own task
        (:mod:`chainml.neuro.node`), so a resume decides exactly as the first run did."""
        spiking = version_recipe(self.s.store.get(weights_cid)).spiking
        if spiking is None or spiking.event_ratio is None:
            return {}
        out: dict[str, tuple[int, str]] = {}
        for r in sorted(x for x in self.log.opened_rounds() if x < round_id):
            if r not in self._commits:
                evidence = self.evidence(r)
                nodes = tuple(u.node.lower() for u in evidence.updates)
                self._commits[r] = (evidence.base_weights_cid, nodes)
            cid, nodes = self._commits[r]
            out.update({node: (r, cid) for node in nodes})
        return out

    def commit_phase(self, round_id: int, times: RoundTimes) -> None:
        ledger = self.s.ledger
        info = ledger.round_info(round_id)
        base_version = info.base_version
        weights_cid = onchain_to_str(*ledger.version(base_version).weights)
        start = time.perf_counter()
        outcomes = self.node_outcomes(round_id, base_version, weights_cid)
        # Split the device phase's wall time by where the devices spent their host time.
        wall = time.perf_counter() - start
        spent = [sum(o.seconds[i] for o in outcomes) for i in range(3)]
        total = sum(spent) or 1.0
        times.adapt += wall * spent[0] / total
        times.ipfs += wall * spent[1] / total
        times.chain += wall * spent[2] / total  # signing the commitment is chain work
        start = time.perf_counter()
        # Who is on chain already (a resumed round); nobody while the round counts nothing.
        on_chain = self.evidence(round_id).updates if info.commit_count else ()
        already = {u.node.lower() for u in on_chain}
        signed = [o.signed for o in outcomes if o.status == "ok" and o.node.lower() not in already]
        for o in outcomes:
            if o.status == "ok" and o.signed is None:
                log.warning("gateway drops node %s's commitment (no signature)", o.node)
        # What the chain would refuse (below the round's reputation minimum, another round or
        # base version) is dropped first, by the gateway or, in direct mode, by the nodes.
        admitted = self.gateway.admit(
            [s for s in signed if s is not None], round_id, base_version,
            info.min_reputation,
        )  # fmt: skip
        self.progress("gateway submits", 0, len(admitted))
        if self.config.mode == "direct":
            # Every node sends its own transaction, signed with its own key.
            accounts = self.fleet.by_address()
            commit_direct_many(
                ledger,
                self.s.gateway,
                admitted,
                [accounts[s.commitment.node.lower()].account for s in admitted],
            )
        else:
            chunk = (
                self.config.relay_batch
                if self.config.mode == "relayed"
                else self.config.merkle_batch
            )
            self.gateway.submit(round_id, base_version, admitted, chunk)
        self.progress("gateway submits", len(admitted), len(admitted))
        if self.config.mode == "batched":
            self.challenger.scan(round_id)
        info = ledger.round_info(round_id)
        # Event-driven devices that stayed silent are not waited for.
        silent = sum(o.status == "silent" for o in outcomes)
        participants = self.config.nodes - len(self.fleet.dropped(round_id)) - silent
        wanted = int(np.ceil(self.config.min_commitments_fraction * max(participants, 1)))
        minimum = max(info.min_commitments, wanted)
        if info.commit_count >= minimum:
            self.aggregator.close_commit_phase(round_id)
        else:
            # Too few commitments: wait out the deadline (on a local chain, move its clock)
            # and close the round cleanly without a new version.
            self.advance_to(info.commit_deadline + 1)
            self.aggregator.close_round(round_id)
        self.s.checkpoint()
        times.chain += time.perf_counter() - start

    def vote_phase(self, round_id: int, times: RoundTimes) -> None:
        ledger = self.s.ledger
        challenge_end = ledger.round_info(round_id).challenge_end
        if self._now() < challenge_end:
            # Batches can still be challenged: the challenger scans them, then the harness
            # moves the local chain's clock past the window.
            self.challenger.scan(round_id)
            self.advance_to(challenge_end)
        proposal_id = ledger.pending_proposal(round_id)
        if proposal_id == 0:
            # The round's evidence is final now: every validator starts its recomputation
            # (in the executor's workers) while the aggregator builds and proposes.
            jobs = [replace(v.review_job(0), round=round_id) for v in self.validators]
            recomputed = self.executor.map(recompute, jobs)
            start = time.perf_counter()
            evidence, outcome = self.aggregator.build(round_id, self.from_block)
            times.aggregate += time.perf_counter() - start
            start = time.perf_counter()
            proposal_id = self.aggregator.propose(round_id, evidence, outcome)
            times.chain += time.perf_counter() - start
            # While the validators recompute, the harness observes the version it expects to
            # finalize (its own recomputation); the row reuses that only for the same CID.
            devices = self.node_outcomes(round_id, evidence.base_version, evidence.base_weights_cid)
            self.observe(round_id, outcome.weights_cid, devices, outcome.weights)
            self.progress("validators vote", 0, len(self.validators))
            start = time.perf_counter()
            reviews = [
                judge(replace(job, proposal_id=proposal_id), done)
                for job, done in zip(jobs, recomputed, strict=True)
            ]
        else:  # a resumed round: the proposal is on chain already
            self.progress("validators vote", 0, len(self.validators))
            start = time.perf_counter()
            reviews = self.reviews(proposal_id)
        times.validate += time.perf_counter() - start
        start = time.perf_counter()
        # Each validator commits its own verdict, salted with its own secret.
        for validator, verdict in zip(self.validators, reviews, strict=True):
            validator.commit(proposal_id, verdict)
        proposal = ledger.proposal(proposal_id)
        if not proposal.commit_phase_over:
            self.advance_to(proposal.commit_deadline + 1)
        for done, validator in enumerate(self.validators, start=1):
            validator.reveal(proposal_id)
            self.progress("validators vote", done, len(self.validators))
        conclusion = self.aggregator.conclude(proposal_id)
        if conclusion.state == "waiting":
            # Quorum is still possible on paper (abstentions): let the reveal phase expire.
            self.advance_to(ledger.proposal(proposal_id).reveal_deadline + 1)
            conclusion = self.aggregator.conclude(proposal_id)
        if conclusion.state == "finalized":
            # A finalized version must be durable before anything reports it (issue 14).
            self.s.checkpoint()
        times.chain += time.perf_counter() - start

    def reviews(self, proposal_id: int) -> list[Review]:
        """Every validator's recomputation, each in its own worker process (the executor)."""
        jobs = [v.review_job(proposal_id) for v in self.validators]
        return list(self.executor.map(review, jobs))

    def settle(self, round_id: int, times: RoundTimes) -> None:
        """Settle the finalized round: its reputation root is already on chain (one write for
        every node), so only the nodes it put below the initial score are proven against it,
        plus the other nodes below that score so they can commit next round
        (``chainml.protocol.settlement``; usually nothing to send)."""
        from chainml.protocol import settlement

        start = time.perf_counter()
        settlement.attach(self.s.ledger, self.s.store, self.from_block)  # current reputations
        settlement.settle_round(
            self.s.ledger, self.s.store, round_id, self.s.aggregator, self.from_block
        )
        times.chain += time.perf_counter() - start

    # -- helpers --------------------------------------------------------------------------

    def reputations(self, addresses: list[str]) -> dict[str, int]:
        """Each node's current reputation, as ``node_infos`` reports it (lower-case keys): from
        the latest reputation table when one is attached (every node in it is registered),
        read from the chain only for nodes the table does not hold."""
        book = getattr(self.s.ledger, "reputation_book", None)
        table = book.table(self.s.ledger) if book is not None else None
        out = {a.lower(): table.score(a) for a in addresses if table is not None and a in table}
        rest = [a for a in addresses if a.lower() not in out]
        infos = self.s.ledger.node_infos(rest) if rest else {}
        return out | {a: info.reputation for a, info in infos.items()}

    def evidence(self, round_id: int) -> RoundEvidence:
        return gather_round(self.s.ledger, self.s.store, round_id, self.from_block)

    def accepted_proposal(self, round_id: int) -> Proposal:
        """The accepted proposal's full input (with list CIDs), from its ProposalSubmitted event."""
        for event in self.s.ledger.proposals(round_id, self.from_block):
            if self.s.ledger.proposal(event.proposal_id).status == ProposalStatus.ACCEPTED:
                return event.proposal
        raise ChainMLError(f"round {round_id} is finalized but has no accepted proposal")

    def node_list(self, cid: OnchainCid | None) -> list[str]:
        return decode_node_list(self.s.store.get(cid_text(cid)))

    def advance_time(self, seconds: int) -> None:
        self.s.w3.provider.make_request("evm_increaseTime", [seconds])
        self.s.w3.provider.make_request("evm_mine", [])

    def _now(self) -> int:
        return int(self.s.w3.eth.get_block("latest")["timestamp"])

    def advance_to(self, timestamp: int) -> None:
        """Move the local chain's clock to ``timestamp`` (the harness owns the clock)."""
        gap = timestamp - self._now()
        if gap > 0:
            self.advance_time(gap)

    def observe(
        self,
        round_id: int,
        weights_cid: str,
        outcomes: list[NodeOutcome],
        weights: bytes | None = None,
    ) -> dict[str, Any]:
        """The harness's own observations of round ``round_id``'s version (held-out curves of
        its weights, the devices' bytes, energy and events), made locally from the public
        version file (or its bytes, ``weights``, whose CID is ``weights_cid``) and the devices'
        round: never read from the aggregator's metrics file."""
        key = (round_id, weights_cid)
        if self._observed is not None and self._observed[0] == key:
            return self._observed[1]
        cfg = self.config
        data = self.s.store.get(weights_cid) if weights is None else weights
        version = decode_version(data, self.arch_id)
        body = observations(
            version.params,
            version.recipe,
            outcomes,
            task=cfg.task,
            eval_tasks=cfg.eval_tasks,
            eval_shots=cfg.eval_shots,
            inner_lr=EVAL_INNER_LR,
            seed=cfg.seed,
        )
        self._observed = (key, body)
        return body

    def write_row(self, round_id: int, status: RoundStatus, times: RoundTimes) -> None:
        ledger = self.s.ledger
        info = ledger.round_info(round_id)
        row: dict[str, Any] = {
            "round": round_id,
            "status": "finalized" if status == RoundStatus.FINALIZED else "closed",
            "version": None,
            "aggregate_cid": None,
            "metrics_cid": None,
            "committed": info.commit_count,
            "included": 0,
            "excluded": 0,
            "dropped": len(self.fleet.dropped(round_id)),
        }
        included: set[str] = set()
        excluded: set[str] = set()
        base_version = info.base_version
        weights_cid = onchain_to_str(*ledger.version(base_version).weights)
        outcomes = self.node_outcomes(round_id, base_version, weights_cid)
        by_index = {o.index: o for o in outcomes}
        if status == RoundStatus.FINALIZED:
            proposal = self.accepted_proposal(round_id)
            aggregate_cid = cid_text(proposal.aggregate)
            included = {n.lower() for n in self.node_list(proposal.included_list)}
            excluded = {n.lower() for n in self.node_list(proposal.excluded_list)}
            row |= {
                "version": info.produced_version,
                "aggregate_cid": aggregate_cid,
                "metrics_cid": cid_text(proposal.metrics),
                "included": len(included),
                "excluded": len(excluded),
            }
            row |= self.observe(round_id, aggregate_cid, outcomes)
        if "events" not in row and any(o.status == "silent" for o in outcomes):
            row["events"] = event_summary(outcomes)  # a round every device sat out
        row["gas"] = round_gas(ledger, round_id, self.from_block)
        row["wall_time_s"] = times.as_dict()
        reputations = self.reputations([n.address for n in self.fleet.nodes])
        node_rows = []
        for node in self.fleet.nodes:
            o = by_index.get(node.index)
            address = node.address.lower()
            state = (
                "dropped"
                if o is None
                else "silent"
                if o.status == "silent"
                else "refused"
                if o.status != "ok"
                else "included"
                if address in included
                else "excluded"
                if address in excluded
                else "committed"
            )
            node_rows.append(
                {
                    "round": round_id,
                    "node": node.address,
                    "index": node.index,
                    "adversary": node.index in self.adversaries,
                    "attack": self.config.attack if node.index in self.adversaries else None,
                    "status": state,
                    "bytes_up": o.bytes_up if o else 0,
                    "bytes_down": o.bytes_down if o else 0,
                    "energy_j": o.energy_j if o else 0.0,
                    "airtime_s": o.airtime_s if o else 0.0,
                    "loss_before": o.loss_before if o else None,
                    "loss_after": o.loss_after if o else None,
                    "reputation": reputations[address],
                }
            )
        self.log.append_round(node_rows, row)
