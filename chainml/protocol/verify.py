"""``chainml verify``: replay the whole version history from chain and IPFS data alone.

For every finalized version, in order:

1. fetch every block the version rests on, each checked against its CID by the store: the
   version's own weights and metrics, its proposal's node lists, every batch's leaves file and
   every committed update of its round, and its reputation table. A changed byte in any of them
   is reported as a **stored block corrupt** (or **missing**) under that version, naming the
   CID at fault;
2. rebuild the round's evidence, recompute the aggregate with the accepted proposal's rule, and
   compare the weights CID and the voted node lists with what the chain recorded (an
   **aggregate mismatch** names the recomputed and the recorded CIDs);
3. rebuild the round's reputation table from the previous one (checked the same way one
   version earlier) and compare its root, CID, parent root and gated count with what the chain
   recorded (a **reputation mismatch** names the recorded table's CID);
4. recompute the round's metrics file (``chainml.protocol.round_metrics``) and compare its CID
   with the one the version records (a **metrics mismatch** names the recorded file's CID and
   the fields in which it differs, or why it cannot be read).

The storage check of version v runs before the recompute of version v + 1, so a corrupt
version is reported as itself, never under the version built on it. The first failure stops
the replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chainml.aggregate.strategies import strategy_for_rule
from chainml.chain.client import Ledger
from chainml.chain.records import RoundFinalized, VersionInfo
from chainml.chain.types import NO_CID, OnchainCid, Proposal, ProposalStatus
from chainml.errors import ChainMLError, IntegrityError, StorageError
from chainml.protocol.evidence import gather_round
from chainml.protocol.recompute import compute_aggregate
from chainml.protocol.round_metrics import RoundMetrics, explain_metrics
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import Store

OK = "ok"
CORRUPT = "corrupt"
MISSING = "missing"
MISMATCH = "mismatch"


@dataclass(frozen=True)
class VersionCheck:
    version: int
    round: int
    weights_cid: str
    ok: bool
    detail: str
    kind: str = OK
    """``ok``, ``corrupt`` (a stored block's bytes do not match its CID), ``missing`` (the
    store cannot provide it) or ``mismatch`` (the recomputed aggregate, reputation table or
    metrics file differs from the recorded one)."""
    fault_cid: str | None = None
    """The CID of the block at fault (for a mismatch: the recomputed weights CID, or the
    recorded table's or metrics file's CID)."""


def verify_history(
    ledger: Ledger,
    store: Store,
    from_block: int = 0,
    on_version: Callable[[VersionCheck, int], None] | None = None,
) -> list[VersionCheck]:
    """Check every finalized version in order; stops at the first failure."""
    total = ledger.current_version()
    checks: list[VersionCheck] = []
    for version_id in range(1, total + 1):
        check = _check_version(ledger, store, version_id, from_block)
        checks.append(check)
        if on_version:
            on_version(check, total)
        if not check.ok:
            break
    return checks


def _blocks(
    ledger: Ledger, version: VersionInfo, proposal: Proposal, round_id: int, from_block: int
):
    """(what, CID) of every stored object version ``version`` rests on."""
    yield "weights", onchain_to_str(*version.weights)
    if any(version.metrics[0]):
        yield "metrics", onchain_to_str(*version.metrics)
    for name, cid in (
        ("includedList", proposal.included_list),
        ("excludedList", proposal.excluded_list),
        ("reputationTable", proposal.reputation_table),
    ):
        if cid is not None and any(cid[0]):
            yield name, onchain_to_str(*cid)
    for batch in ledger.batches(round_id, from_block):
        yield f"leaves of batch {batch.batch_id}", onchain_to_str(*batch.leaves)
    for event in ledger.commitments(round_id, from_block):
        yield f"update of node {event.node}", onchain_to_str(*event.update)


def _storage_fault(
    ledger: Ledger,
    store: Store,
    version: VersionInfo,
    proposal: Proposal,
    round_id: int,
    from_block: int,
) -> tuple[str, str, str] | None:
    """(kind, CID, detail) of the first stored block that fails its CID check, or None."""
    for what, cid in _blocks(ledger, version, proposal, round_id, from_block):
        try:
            store.get(cid)
        except IntegrityError as exc:
            return CORRUPT, cid, f"stored block corrupt: {what} {cid}: {exc}"
        except StorageError as exc:
            if what.startswith("update of node"):
                continue  # never stored: the node's fault, which the aggregate accounts for
            return MISSING, cid, f"stored block missing: {what} {cid}: {exc}"
    return None


def _check_version(ledger: Ledger, store: Store, version_id: int, from_block: int) -> VersionCheck:
    version = ledger.version(version_id)
    round_id = version.round
    recorded = onchain_to_str(*version.weights)
    proposal = _accepted(ledger, round_id, from_block)

    def fail(kind: str, detail: str, cid: str | None = None) -> VersionCheck:
        return VersionCheck(version_id, round_id, recorded, False, detail, kind, cid)

    if proposal is None:
        return fail(MISMATCH, "no accepted proposal")
    try:
        fault = _storage_fault(ledger, store, version, proposal, round_id, from_block)
        if fault is not None:
            return fail(fault[0], fault[2], fault[1])
        evidence = gather_round(ledger, store, round_id, from_block)
        for update in evidence.updates:
            if not update.source.startswith("batch:"):
                continue  # direct and relayed updates were checked above
            try:
                store.get(update.update_cid)
            except IntegrityError as exc:
                what = f"update of node {update.node}"
                return fail(CORRUPT, f"stored block corrupt: {what} {update.update_cid}: {exc}",
                            update.update_cid)  # fmt: skip
            except StorageError:
                continue  # never stored: the node's fault, which the aggregate accounts for
        if evidence.base_version != version.parent:
            return fail(
                MISMATCH,
                f"round base {evidence.base_version} is not the parent {version.parent}",
            )
        outcome = compute_aggregate(evidence, store, strategy_for_rule(proposal.rule_id))
    except ChainMLError as exc:
        return fail(MISMATCH, f"cannot recompute: {exc}")
    if outcome.weights_cid != recorded:
        return fail(
            MISMATCH,
            f"aggregate mismatch: recomputed weights {outcome.weights_cid} differ from the "
            f"recorded {recorded}",
            outcome.weights_cid,
        )
    if (outcome.included_root, outcome.excluded_root) != (
        proposal.included_root,
        proposal.excluded_root,
    ):
        return fail(MISMATCH, "aggregate mismatch: included/excluded node lists differ")
    table_cid = _cid_or_none(proposal.reputation_table)
    recorded_root = _finalized_root(ledger, round_id, from_block)
    recomputed = (
        outcome.reputation.root,
        outcome.reputation.cid,
        outcome.reputation.parent_root,
        outcome.gated_count,
    )
    on_chain = (
        recorded_root,
        table_cid,
        proposal.parent_reputation_root,
        proposal.gated_count,
    )
    if recomputed != on_chain:
        return fail(
            MISMATCH,
            f"reputation mismatch: recomputed table {outcome.reputation.cid} (root "
            f"0x{outcome.reputation.root.hex()}) differs from the recorded {table_cid} (root "
            f"0x{recorded_root.hex()})",
            table_cid,
        )
    metrics = RoundMetrics.of(evidence, outcome)
    metrics_cid = _cid_or_none(version.metrics)
    if metrics_cid != metrics.cid:
        return fail(
            MISMATCH,
            f"metrics mismatch: recomputed file {metrics.cid} differs from the recorded "
            f"{metrics_cid} ({_metrics_fault(store, metrics, metrics_cid)})",
            metrics_cid,
        )
    return VersionCheck(
        version_id, round_id, recorded, True,
        f"{len(outcome.included)} included, {len(outcome.excluded)} excluded",
    )  # fmt: skip


def _metrics_fault(store: Store, expected: RoundMetrics, recorded: str | None) -> str:
    """What is wrong with the recorded metrics file (checked against its CID already)."""
    if recorded is None:
        return "the version records no metrics file"
    try:
        return explain_metrics(expected, store.get(recorded))
    except ChainMLError as exc:
        return f"cannot read it: {exc}"


def _cid_or_none(value: OnchainCid | None) -> str | None:
    digest, codec = value or NO_CID
    return onchain_to_str(digest, codec) if any(digest) else None


def _finalized_root(ledger: Ledger, round_id: int, from_block: int) -> bytes:
    """The reputation root the ledger recorded when ``round_id`` finalized."""
    events = ledger.events(RoundFinalized, from_block, round=round_id)
    return events[0].reputation_root if events else b""


def _accepted(ledger: Ledger, round_id: int, from_block: int) -> Proposal | None:
    for event in ledger.proposals(round_id, from_block):
        if ledger.proposal(event.proposal_id).status == ProposalStatus.ACCEPTED:
            return event.proposal
    return None
