"""``chainml inspect``: what happened on the chain, as rich tables or ``--json``.

Works against any RPC URL plus a deployments file; by default the local chain and the
deployments file of the data directory. Slow reads (log scans, per-node calls) show a
progress bar on stderr so ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from chainml.chain.connect import ChainSource, connect
from chainml.chain.deployments import deployments_path
from chainml.chain.eventlog import Event, check_address, filter_events, read_events
from chainml.cli.context import cli_context, console, err_console
from chainml.errors import ChainError
from chainml.inspection import (
    NodeHistory,
    RoundRow,
    VersionRow,
    contracts_view,
    node_history,
    nodes_view,
    rounds_view,
    versions_view,
)

app = typer.Typer(
    help="Inspect a deployment: contracts, nodes, versions, rounds, events, one node.",
    no_args_is_help=True,
)

RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="CHAINML_RPC_URL",
        help="JSON-RPC URL of the chain.",
        show_default="the local chain of the data directory",
    ),
]
DeploymentsFile = Annotated[
    Path | None,
    typer.Option(
        "--deployments",
        help="Deployments file naming the contract addresses.",
        show_default="<data dir>/deployments.json",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
FromBlock = Annotated[
    int | None,
    typer.Option("--from-block", help="First block to read events from.", show_default="deploy"),
]
RoundOpt = Annotated[int | None, typer.Option("--round", help="Only this round.")]
Ipfs = Annotated[
    str,
    typer.Option(
        "--ipfs",
        envvar="CHAINML_IPFS",
        help="Where batch leaves, voted node lists and reputation tables are read from: "
        "`embedded` or a Kubo RPC API URL.",
    ),
]


# -- commands -----------------------------------------------------------------------------


@app.command()
def contracts(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    as_json: AsJson = False,
) -> None:
    """Contract addresses, role holders and registry counts."""
    source, events = _open(ctx, rpc_url, deployments, None)
    view = contracts_view(source, events)
    if as_json:
        return _print_json(view)
    console.print(
        f"chain id [bold]{view.chain_id}[/] at {view.rpc_url}, head block {view.head_block}, "
        f"deployed at block {view.deployed_at_block} by {view.deployer or '?'}"
    )
    table = _table("contract", "address", "code bytes", title="Contracts")
    for c in view.contracts:
        table.add_row(c.name, c.address, f"{c.code_bytes:,}")
    console.print(table)
    roles = _table("role", "holders", title="Roles")
    for role, holders in view.roles.items():
        roles.add_row(role, "\n".join(holders) or "-")
    console.print(roles)
    counts = _table("what", "count", title="Counts")
    for key, value in view.counts.items():
        counts.add_row(key.replace("_", " "), str(value))
    console.print(counts)


@app.command()
def nodes(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    as_json: AsJson = False,
    ipfs: Ipfs = "embedded",
) -> None:
    """Registered nodes: status, reputation, commitments, gateway."""
    source, events = _open(ctx, rpc_url, deployments, None)
    offchain, scores = _offchain(ctx, events, ipfs)
    with _progress("reading nodes") as progress:
        rows = nodes_view(source, events, progress, offchain, scores)
    if as_json:
        return _print_json(rows)
    table = _table(
        "node", "status", "reputation", "commits", "included", "excluded", "last round",
        "gateway", title=f"Nodes ({len(rows)})",
    )  # fmt: skip
    for n in rows:
        table.add_row(
            n.address, n.status, str(n.reputation), str(n.commitments), str(n.included),
            str(n.excluded), str(n.last_commit_round or "-"), n.gateway or "-",
        )  # fmt: skip
    console.print(table)


@app.command()
def versions(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    as_json: AsJson = False,
    ipfs: Ipfs = "embedded",
) -> None:
    """The version lineage tree with CIDs, round and metrics.

    "nodes' reported query loss" (--json: mean_loss_before, mean_loss_after) is the mean of
    the query losses the round's nodes signed in their commitments, with the published weights
    and after their own adaptation: what the nodes claimed, not a held-out score (the held-out
    curves are in the run's rounds.jsonl and `chainml report`)."""
    source, events = _open(ctx, rpc_url, deployments, None)
    rows = versions_view(source, events, _offchain(ctx, events, ipfs)[0])
    if as_json:
        return _print_json(rows)
    console.print(_version_tree(rows))


@app.command()
def rounds(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    as_json: AsJson = False,
    round_id: RoundOpt = None,
) -> None:
    """Rounds: state, deadlines, commitments, proposal and votes."""
    source, events = _open(ctx, rpc_url, deployments, None)
    with _progress("reading rounds") as progress:
        rows = rounds_view(source, events, round_id, progress)
    if round_id is not None and not rows:
        raise ChainError(f"round {round_id} does not exist (current round: "
                         f"{source.reader.current_round()})")  # fmt: skip
    if as_json:
        return _print_json(rows)
    console.print(_rounds_table(rows))
    for r in rows if round_id is not None else []:
        for p in r.proposals:
            votes = _table("validator", "vote", title=f"Votes on proposal {p.proposal_id}")
            for v in p.votes:
                votes.add_row(v.validator, _vote(v.state, v.approve))
            console.print(votes)


@app.command()
def events(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    as_json: AsJson = False,
    round_id: RoundOpt = None,
    node: Annotated[str | None, typer.Option("--node", help="Only events naming it.")] = None,
    contract: Annotated[
        str | None, typer.Option("--contract", help="ledger, voting, a name or an address.")
    ] = None,
    name: Annotated[str | None, typer.Option("--event", help="Only this event name.")] = None,
    from_block: FromBlock = None,
) -> None:
    """The decoded event log, filterable by round, node or contract."""
    if node is not None:
        node = check_address(node)
    _, all_events = _open(ctx, rpc_url, deployments, from_block)
    rows = filter_events(all_events, round_id=round_id, node=node, contract=contract, name=name)
    if as_json:
        return _print_json(rows)
    console.print(_events_table(rows, f"Events ({len(rows)} of {len(all_events)})"))


@app.command()
def node(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The node's (or any account's) address.")],
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    as_json: AsJson = False,
    ipfs: Ipfs = "embedded",
) -> None:
    """One node's history: registry state, roles, every round it took part in, its events."""
    address = check_address(address)
    source, events = _open(ctx, rpc_url, deployments, None)
    history = node_history(source, events, address, *_offchain(ctx, events, ipfs))
    if as_json:
        return _print_json(history)
    _print_node(history)


# -- plumbing -----------------------------------------------------------------------------


def _open(
    ctx: typer.Context, rpc_url: str | None, deployments: Path | None, from_block: int | None
) -> tuple[ChainSource, list[Event]]:
    data_dir = cli_context(ctx).data_dir
    if rpc_url is None:
        from chainml.services.chain import LocalChain

        info = LocalChain(data_dir).info()
        if info is None:
            raise ChainError(
                f"no local chain is running for data directory {data_dir}: start it with "
                "`chainml chain up`, or pass --rpc-url (or set CHAINML_RPC_URL)"
            )
        rpc_url = info.url
    source = connect(rpc_url, deployments or deployments_path(data_dir))
    with _progress("reading events (blocks)") as progress:
        found = read_events(source, from_block, progress=progress)
    return source, found


def _offchain(
    ctx: typer.Context, events: list[Event], ipfs: str
) -> tuple[list[Event], dict[str, int]]:
    """What the store adds to the log: batched commitments (one record per leaf), the voted
    lists' outcomes and the latest reputation table (only read when the log names them)."""
    if not any(e.name in ("BatchPosted", "ProposalAccepted") for e in events):
        return [], {}
    from chainml.inspection.batches import batch_leaves, current_scores, round_outcomes
    from chainml.storage.store import open_store

    fetch = open_store(ipfs, cli_context(ctx).data_dir).get
    records = [*batch_leaves(events, fetch), *round_outcomes(events, fetch)]
    return records, current_scores(events, fetch)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr, driven by (done, total) callbacks."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _print_json(value: Any) -> None:
    data = [asdict(v) for v in value] if isinstance(value, list) else asdict(value)
    typer.echo(json.dumps(data, indent=2))


def _table(*columns: str, title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        table.add_column(col, no_wrap=col in ("node", "address", "validator", "holders"))
    return table


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _vote(state: str, approve: bool | None) -> str:
    return state if approve is None else ("yes" if approve else "no")


def _version_tree(rows: list[VersionRow]) -> Tree:
    by_id = {r.version: r for r in rows}

    def label(r: VersionRow) -> str:
        head = f"[bold]v{r.version}[/] " + ("genesis" if r.version == 0 else f"round {r.round}")
        parts = [head, f"weights {r.weights or '-'}", f"metrics {r.metrics or '-'}"]
        if r.version != 0:
            parts.append(
                f"{r.commitments} commits, {r.included} in / {r.excluded} out, nodes' "
                f"reported query loss {_loss(r.mean_loss_before)} as published, "
                f"{_loss(r.mean_loss_after)} after adapting"
            )
        parts.append(_time(r.timestamp))
        return "  ".join(parts)

    def add(tree: Tree, r: VersionRow) -> None:
        for child in r.children:
            add(tree.add(label(by_id[child])), by_id[child])

    root = Tree(label(rows[0]))
    add(root, rows[0])
    return root


def _rounds_table(rows: list[RoundRow]) -> Table:
    table = _table(
        "round", "status", "version", "commit deadline", "commits", "batches", "proposal",
        "votes", title=f"Rounds ({len(rows)})",
    )  # fmt: skip
    for r in rows:
        p = r.proposals[-1] if r.proposals else None
        produced = f" -> v{r.produced_version}" if r.produced_version is not None else ""
        table.add_row(
            str(r.round), r.status, f"v{r.base_version}{produced}", _time(r.commit_deadline),
            f"{r.commitments} (min {r.min_commitments})", str(r.batches),
            f"#{p.proposal_id} {p.status} {p.aggregate}" if p else "-",
            f"{p.yes} yes / {p.no} no (need {p.required} of {p.validators})" if p else "-",
        )  # fmt: skip
    return table


def _events_table(rows: list[Event], title: str) -> Table:
    table = _table("block", "contract", "event", "arguments", title=title)
    for e in rows:
        args = ", ".join(f"{k}={_short(v)}" for k, v in e.args.items())
        table.add_row(str(e.block), e.contract.removeprefix("ChainML"), e.name, args)
    return table


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _print_node(h: NodeHistory) -> None:
    n = h.node
    if n is None:
        console.print(f"[bold]{h.address}[/] is not a registered node")
    else:
        console.print(
            f"[bold]{h.address}[/]: {n.status}, reputation {n.reputation}, gateway "
            f"{n.gateway or '-'}, {n.commitments} commitments, profile {n.profile or '-'}"
        )
    if h.roles:
        console.print(f"roles: {', '.join(h.roles)}")
    table = _table(
        "round", "committed", "reported loss, published", "reported loss, adapted", "outcome",
        "reputation", title="Rounds (losses: the node's own report, on its query samples)",
    )  # fmt: skip
    for r in h.rounds:
        rep = "-" if r.reputation is None else f"{r.reputation} ({r.reputation_delta:+d})"
        table.add_row(
            str(r.round), "yes" if r.committed else "no", _loss(r.loss_before),
            _loss(r.loss_after), r.outcome or "-", rep,
        )  # fmt: skip
    console.print(table)
    console.print(_events_table(h.events, f"Events ({len(h.events)})"))
