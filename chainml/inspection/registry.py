"""Who is who on the ledger: contracts and role holders, the node registry, one node's story.

Role holders are not enumerable on chain (plain AccessControl), so they are replayed from
``RoleGranted``/``RoleRevoked`` and then confirmed with ``hasRole``. Node state comes from
``nodeInfo`` (the truth now), node activity from the event log (the history).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chainml.chain.artifacts import LEDGER, VOTING
from chainml.chain.connect import ChainSource
from chainml.chain.eventlog import Event, check_address, cid_or_none
from chainml.chain.reader import ROLES
from chainml.chain.records import NodeInfo
from chainml.errors import ConfigError
from chainml.inspection.batches import BATCH_LEAF, ROUND_OUTCOME

ZERO_ADDRESS = "0x" + "0" * 40
COMMITMENT_RECORDS = ("CommitmentAccepted", BATCH_LEAF)
"""Direct and relayed commitments (events) and batched ones (leaves read from IPFS)."""


@dataclass(frozen=True)
class ContractRow:
    name: str
    address: str
    code_bytes: int


@dataclass(frozen=True)
class ContractsView:
    """What ``inspect contracts`` shows."""

    rpc_url: str
    chain_id: int
    head_block: int
    deployed_at_block: int
    deployer: str
    contracts: list[ContractRow]
    roles: dict[str, list[str]]
    counts: dict[str, int]


@dataclass(frozen=True)
class NodeRow:
    """One registered node: its registry state plus counts from the event log."""

    address: str
    status: str
    reputation: int
    gateway: str | None
    commitments: int
    last_commit_round: int
    last_settled_round: int
    included: int
    excluded: int
    voided_leaves: int
    profile: str | None


@dataclass(frozen=True)
class NodeRound:
    """One node in one round: what it committed and how it was settled."""

    round: int
    committed: bool
    loss_before: float | None = None
    """The query loss the node reported in its commitment, with the published weights."""
    loss_after: float | None = None
    """The query loss it reported after its own adaptation (self-reported, not checked)."""
    update: str | None = None
    outcome: str | None = None
    reputation_delta: int = 0
    reputation: int | None = None


@dataclass(frozen=True)
class NodeHistory:
    """What ``inspect node ADDRESS`` shows."""

    address: str
    node: NodeRow | None
    """None when the address is not a registered node (an aggregator, a gateway, ...)."""
    roles: list[str]
    rounds: list[NodeRound]
    events: list[Event] = field(default_factory=list)


def contracts_view(source: ChainSource, events: list[Event]) -> ContractsView:
    reader = source.reader
    holders: dict[str, list[str]] = {role: [] for role in ROLES}
    for e in events:
        if e.contract != LEDGER or e.name not in ("RoleGranted", "RoleRevoked"):
            continue
        role, account = str(e.args["role"]), e.args["account"]
        members = holders.setdefault(role, [])
        if e.name == "RoleGranted" and account not in members:
            members.append(account)
        elif e.name == "RoleRevoked" and account in members:
            members.remove(account)
    roles = {
        role: [a for a in accounts if role not in ROLES or reader.has_role(role, a)]
        for role, accounts in holders.items()
    }
    counts = reader.counts() | {"events": len(events)}
    contracts = [
        ContractRow(name, c.address, len(source.w3.eth.get_code(c.address)))
        for name, c in ((LEDGER, reader.ledger), (VOTING, reader.voting))
    ]
    return ContractsView(
        rpc_url=source.url,
        chain_id=source.deployments.chain_id,
        head_block=source.head,
        deployed_at_block=source.first_block,
        deployer=source.deployments.deployer,
        contracts=contracts,
        roles=roles,
        counts=counts,
    )


def registered_nodes(events: list[Event]) -> list[str]:
    """Node addresses in registration order."""
    return [e.args["node"] for e in events if e.name == "NodeRegistered"]


def nodes_view(
    source: ChainSource,
    events: list[Event],
    progress: Callable[[int, int], None] | None = None,
    offchain: list[Event] | None = None,
    scores: dict[str, int] | None = None,
) -> list[NodeRow]:
    """Every registered node. ``offchain`` records (``chainml.inspection.batches``: batched
    commitments, voted-list outcomes) add what the log does not name per node; ``scores``
    (the latest reputation table) is each node's current reputation, else the last one
    proven on chain is shown."""
    addresses = registered_nodes(events)
    infos = source.reader.node_infos(addresses, progress=progress)
    stats = _node_stats([*events, *(offchain or [])])
    return [_node_row(a, infos[a.lower()], stats[a.lower()], scores) for a in addresses]


def node_history(
    source: ChainSource,
    events: list[Event],
    address: str,
    offchain: list[Event] | None = None,
    scores: dict[str, int] | None = None,
) -> NodeHistory:
    """One account's registry state, roles, per-round story and every event naming it
    (``offchain`` and ``scores`` as for :func:`nodes_view`)."""
    address = check_address(address)
    mine = [e for e in events if address.lower() in e.addresses()]
    my_leaves = [e for e in offchain or [] if address.lower() in e.addresses()]
    info = source.reader.node_info(address)
    roles = [r for r in ROLES if source.reader.has_role(r, address)]
    if not info.registered and not mine and not roles:
        raise ConfigError(
            f"unknown address {address}: it is not a registered node and no chainml event or "
            "role names it on this chain (list nodes with `chainml inspect nodes`)"
        )
    stats = _node_stats([*mine, *my_leaves])[address.lower()]
    row = _node_row(address, info, stats, scores) if info.registered else None
    rounds = _node_rounds(sorted([*mine, *my_leaves], key=_chain_order), address)
    return NodeHistory(address, row, roles, rounds, mine)


def _chain_order(e: Event) -> tuple[int, int]:
    return (e.block, e.log_index)


def _node_row(
    address: str, info: NodeInfo, stats: Counter[str], scores: dict[str, int] | None
) -> NodeRow:
    status = "active" if info.active else ("inactive" if info.registered else "unknown")
    return NodeRow(
        address=address,
        status=status,
        reputation=(scores or {}).get(address.lower(), info.reputation),
        gateway=None if info.gateway == ZERO_ADDRESS else info.gateway,
        commitments=stats["commitments"],
        last_commit_round=info.last_commit_round,
        last_settled_round=info.last_settled_round,
        included=stats["Included"],
        excluded=stats["Excluded"],
        voided_leaves=stats["voided"],
        profile=cid_or_none(*info.profile),
    )


def _node_stats(events: list[Event]) -> defaultdict[str, Counter[str]]:
    stats: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        if e.name in COMMITMENT_RECORDS:
            stats[e.args["node"].lower()]["commitments"] += 1
        elif e.name == "ReputationChanged":
            stats[e.args["account"].lower()][str(e.args["reason"])] += 1
        elif e.name == "LeafVoided":
            stats[e.args["node"].lower()]["voided"] += 1
        elif e.name == ROUND_OUTCOME:
            stats[e.args["node"].lower()][str(e.args["outcome"]).capitalize()] += 1
    return stats


def _node_rounds(events: list[Event], address: str) -> list[NodeRound]:
    rounds: dict[int, dict[str, Any]] = defaultdict(lambda: {"committed": False})
    last_score: int | None = None
    for e in events:
        if e.name in COMMITMENT_RECORDS and e.args["node"] == address:
            rounds[int(e.args["round"])].update(
                committed=True,
                loss_before=float(e.args["lossBefore"]),
                loss_after=float(e.args["lossAfter"]),
                update=e.args["update"],
            )
        elif e.name == "ReputationChanged" and e.args["account"] == address:
            r = rounds[int(e.args["round"])]
            r["outcome"] = str(e.args["reason"]).lower()
            r["reputation_delta"] = r.get("reputation_delta", 0) + int(e.args["delta"])
            r["reputation"] = int(e.args["score"])
        elif e.name == ROUND_OUTCOME and e.args["node"] == address:
            # The voted lists and the round's reputation table (IPFS): the score moved from
            # the previous table's (or the initial score) to this one's.
            r = rounds[int(e.args["round"])]
            r["outcome"] = str(e.args["outcome"])
            if e.args["score"] is not None:
                before = last_score if last_score is not None else e.args["initial"]
                r["reputation"] = int(e.args["score"])
                r["reputation_delta"] = int(e.args["score"]) - int(before)
                last_score = int(e.args["score"])
    return [NodeRound(round=k, **v) for k, v in sorted(rounds.items())]
