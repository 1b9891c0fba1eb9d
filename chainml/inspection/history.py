"""What happened over time: the version lineage and every round with its proposals and votes.

Versions and rounds are read with their views (current state, effective round status); the
commitments, proposal contents and individual votes come from the event log, which is the
only place the chain keeps them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import fmean

from chainml.chain.connect import ChainSource
from chainml.chain.eventlog import Event, cid_or_none
from chainml.chain.records import ProposalInfo, RoundInfo, VersionInfo
from chainml.chain.types import RoundStatus, VoteState
from chainml.inspection.batches import BATCH_LEAF, batch_counts

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VersionRow:
    """One meta-weight version; metrics are what the chain itself records about its round."""

    version: int
    parent: int | None
    round: int
    weights: str | None
    metrics: str | None
    timestamp: int
    block: int | None
    commitments: int
    included: int | None
    excluded: int | None
    mean_loss_before: float | None
    """The mean of the query losses the round's nodes reported in their signed commitments,
    with the published (base) weights as they are: their own claim, not a held-out score."""
    mean_loss_after: float | None
    """The same nodes' reported query loss after their own local adaptation (the device's head
    re-fit, or a spiking device's plasticity rule). Early rounds can report it above
    ``mean_loss_before``: a few shots adapt a barely trained model badly. The held-out learning
    curves are the harness's (``rounds.jsonl``, ``chainml report``)."""
    children: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class VoteRow:
    validator: str
    state: str
    approve: bool | None


@dataclass(frozen=True)
class ProposalRow:
    proposal_id: int
    status: str
    proposer: str
    aggregate: str | None
    metrics: str | None
    included: int
    excluded: int
    rule_id: int
    validators: int
    required: int
    yes: int
    no: int
    commit_deadline: int
    reveal_deadline: int
    votes: list[VoteRow]


@dataclass(frozen=True)
class RoundRow:
    """One round as ``inspect rounds`` shows it."""

    round: int
    status: str
    base_version: int
    produced_version: int | None
    commit_deadline: int
    challenge_end: int
    min_commitments: int
    commitments: int
    direct_or_relayed: int
    batches: int
    quorum_bps: int
    proposals: list[ProposalRow]


def versions_view(
    source: ChainSource, events: list[Event], offchain: list[Event] | None = None
) -> list[VersionRow]:
    """Every version, genesis first, with lineage (parent/children) and round metrics.

    A round's commitments count direct, relayed and batched ones (batch counts come from the
    log; ``offchain`` batch leaves, from ``batches.batch_leaves``, add their losses)."""
    reader = source.reader
    count = int(reader.ledger.functions.versionCount().call())
    raws: list[VersionInfo] = reader.call_records(
        VersionInfo, [reader.ledger.functions.version(i) for i in range(count)]
    )
    appended = {int(e.args["version"]): e.block for e in events if e.name == "VersionAppended"}
    accepted = {
        int(e.args["round"]): int(e.args["proposalId"])
        for e in events
        if e.name == "ProposalAccepted"
    }
    submitted = {int(e.args["proposalId"]): e for e in events if e.name == "ProposalSubmitted"}
    losses = _round_losses([*events, *(offchain or [])])
    batched = batch_counts(events)
    direct = Counter(int(e.args["round"]) for e in events if e.name == "CommitmentAccepted")
    children: dict[int, list[int]] = defaultdict(list)
    for i, v in enumerate(raws):
        if i != 0:
            children[v.parent].append(i)
    rows = []
    for i, v in enumerate(raws):
        rnd = v.round
        prop = submitted.get(accepted.get(rnd, -1))
        before, after = losses.get(rnd, ([], []))
        rows.append(
            VersionRow(
                version=i,
                parent=None if i == 0 else v.parent,
                round=rnd,
                weights=cid_or_none(*v.weights),
                metrics=cid_or_none(*v.metrics),
                timestamp=v.timestamp,
                block=appended.get(i),
                commitments=direct[rnd] + batched[rnd],
                included=int(prop.args["proposal"]["includedCount"]) if prop else None,
                excluded=int(prop.args["proposal"]["excludedCount"]) if prop else None,
                mean_loss_before=fmean(before) if before else None,
                mean_loss_after=fmean(after) if after else None,
                children=children.get(i, []),
            )
        )
    return rows


def rounds_view(
    source: ChainSource,
    events: list[Event],
    round_id: int | None = None,
    progress: Progress | None = None,
) -> list[RoundRow]:
    """Every round (or one), newest last, with its proposals and each validator's vote."""
    reader = source.reader
    current = reader.current_round()
    ids = [round_id] if round_id is not None else list(range(1, current + 1))
    ids = [i for i in ids if 1 <= i <= current]
    fns = [reader.ledger.functions.round(i) for i in ids]
    infos: list[RoundInfo] = reader.call_records(RoundInfo, fns, progress)
    direct = defaultdict(int)
    for e in events:
        if e.name == "CommitmentAccepted":
            direct[int(e.args["round"])] += 1
    proposals = _proposals(source, events, set(ids))
    return [
        RoundRow(
            round=i,
            status=info.status.name.lower(),
            base_version=info.base_version,
            produced_version=(
                info.produced_version if info.status == RoundStatus.FINALIZED else None
            ),
            commit_deadline=info.commit_deadline,
            challenge_end=info.challenge_end,
            min_commitments=info.min_commitments,
            commitments=info.commit_count,
            direct_or_relayed=direct[i],
            batches=info.batch_count,
            quorum_bps=info.quorum_bps,
            proposals=proposals.get(i, []),
        )
        for i, info in zip(ids, infos, strict=True)
    ]


def _proposals(
    source: ChainSource, events: list[Event], rounds: set[int]
) -> dict[int, list[ProposalRow]]:
    submitted = [
        e for e in events if e.name == "ProposalSubmitted" and int(e.args["round"]) in rounds
    ]
    if not submitted:
        return {}
    reader = source.reader
    fns = [reader.voting.functions.proposal(int(e.args["proposalId"])) for e in submitted]
    views: list[ProposalInfo] = reader.call_records(ProposalInfo, fns)
    votes: dict[int, dict[str, VoteRow]] = defaultdict(dict)
    for e in events:
        if e.name == "VoteCommitted":
            votes[int(e.args["proposalId"])][e.args["validator"]] = VoteRow(
                e.args["validator"], VoteState.COMMITTED.name.lower(), None
            )
        elif e.name == "VoteRevealed":
            votes[int(e.args["proposalId"])][e.args["validator"]] = VoteRow(
                e.args["validator"], VoteState.REVEALED.name.lower(), bool(e.args["approve"])
            )
    out: dict[int, list[ProposalRow]] = defaultdict(list)
    for e, v in zip(submitted, views, strict=True):
        pid, body = int(e.args["proposalId"]), e.args["proposal"]
        out[int(e.args["round"])].append(
            ProposalRow(
                proposal_id=pid,
                status=v.status.name.lower(),
                proposer=e.args["proposer"],
                aggregate=body["aggregate"],
                metrics=body["metrics"],
                included=int(body["includedCount"]),
                excluded=int(body["excludedCount"]),
                rule_id=int(body["ruleId"]),
                validators=v.validator_count,
                required=v.required,
                yes=v.yes,
                no=v.no,
                commit_deadline=v.commit_deadline,
                reveal_deadline=v.reveal_deadline,
                votes=list(votes[pid].values()),
            )
        )
    return out


def _round_losses(events: list[Event]) -> dict[int, tuple[list[float], list[float]]]:
    out: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for e in events:
        if e.name in ("CommitmentAccepted", BATCH_LEAF):
            before, after = out[int(e.args["round"])]
            before.append(float(e.args["lossBefore"]))
            after.append(float(e.args["lossAfter"]))
    return out
