"""``chainml verify``: replay the whole version history from chain and IPFS data alone.

For every finalized version, rebuild its round's evidence, recompute the aggregate with the
accepted proposal's rule, and compare the weights CID and the voted node lists with what the
chain recorded. The first mismatch is reported with enough detail to investigate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chainml.aggregate.strategies import strategy_for_rule
from chainml.chain.client import Ledger
from chainml.chain.types import ProposalStatus, cid_from_struct
from chainml.errors import ChainMLError
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import Store
from chainml.swarm.evidence import gather_round
from chainml.swarm.recompute import compute_aggregate


@dataclass(frozen=True)
class VersionCheck:
    version: int
    round: int
    weights_cid: str
    ok: bool
    detail: str


def verify_history(
    ledger: Ledger,
    store: Store,
    from_block: int = 0,
    on_version: Callable[[VersionCheck, int], None] | None = None,
) -> list[VersionCheck]:
    """Check every finalized version in order; stops at the first mismatch."""
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


def _check_version(ledger: Ledger, store: Store, version_id: int, from_block: int) -> VersionCheck:
    version = ledger.version(version_id)
    round_id = int(version["round"])
    recorded = onchain_to_str(*cid_from_struct(version["weights"]))
    proposal = _accepted(ledger, round_id, from_block)
    if proposal is None:
        return VersionCheck(version_id, round_id, recorded, False, "no accepted proposal")
    try:
        evidence = gather_round(ledger, store, round_id, from_block)
        if evidence.base_version != int(version["parent"]):
            return VersionCheck(
                version_id, round_id, recorded, False,
                f"round base {evidence.base_version} is not the parent {version['parent']}",
            )  # fmt: skip
        outcome = compute_aggregate(evidence, store, strategy_for_rule(int(proposal["ruleId"])))
    except ChainMLError as exc:
        return VersionCheck(version_id, round_id, recorded, False, f"cannot recompute: {exc}")
    if outcome.weights_cid != recorded:
        return VersionCheck(
            version_id, round_id, recorded, False,
            f"recomputed weights {outcome.weights_cid} differ from recorded {recorded}",
        )  # fmt: skip
    if outcome.included_root != bytes(proposal["includedRoot"]) or outcome.excluded_root != bytes(
        proposal["excludedRoot"]
    ):
        return VersionCheck(
            version_id, round_id, recorded, False, "included/excluded node lists differ"
        )
    return VersionCheck(
        version_id, round_id, recorded, True,
        f"{len(outcome.included)} included, {len(outcome.excluded)} excluded",
    )  # fmt: skip


def _accepted(ledger: Ledger, round_id: int, from_block: int) -> dict | None:
    for event in ledger.proposals(round_id, from_block):
        if ProposalStatus(ledger.proposal(int(event["proposalId"]))["status"]) == (
            ProposalStatus.ACCEPTED
        ):
            return dict(event["proposal"])
    return None
