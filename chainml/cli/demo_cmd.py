"""``chainml demo`` (what ``make demo`` runs): the whole product on one machine, end to end.

Local chain + offline IPFS node up, contracts deployed by the brownie script with the task's
seeded genesis weights, a 50-node sine swarm in batched mode, a summary table, the final version
against the genesis under both evaluation protocols on 1,000 held-out tasks, ``chainml verify``,
the HTML report, and the final weights copied to the IPFS node under the same CID. Rerunning it
resumes or, when finished, just shows the results again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from multiformats import CID
from rich.table import Table
from web3 import Web3

from chainml.chain.deployments import deployments_path, load_deployments
from chainml.cli.context import cli_context, console
from chainml.cli.deploy_cmd import print_deployments, run_deploy_script
from chainml.cli.swarm_cmd import print_summary, run_swarm
from chainml.cli.verify_cmd import verify
from chainml.errors import ServiceError
from chainml.protocol.payloads import decode_version
from chainml.services.chain import LocalChain
from chainml.services.ipfs import LocalIpfsNode
from chainml.services.process import HOST
from chainml.storage.cid import cid_str
from chainml.storage.store import Store, open_store
from chainml.swarm.config import SwarmConfig
from chainml.swarm.services import genesis_weights

DEMO_ROUNDS = 30
DEMO_CHAIN_PORT = 8545
DEMO_IPFS_PORT = 5001


def _port_or_free(port: int) -> int | None:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return None
    return port


def demo(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(help="Simulated devices.")] = 50,
    rounds: Annotated[int, typer.Option(help="Rounds.")] = DEMO_ROUNDS,
    workers: Annotated[int, typer.Option(help="Worker processes for the devices.")] = 2,
) -> None:
    """Run the full local demo: chain, IPFS, brownie deploy, swarm, verify, report."""
    data_dir = cli_context(ctx).data_dir
    config = SwarmConfig(nodes=nodes, rounds=rounds, task="sine", mode="batched")

    local_chain = LocalChain(data_dir)
    chain = local_chain.up(port=None if local_chain.info() else _port_or_free(DEMO_CHAIN_PORT))
    console.print(f"chain: {chain.engine} at {chain.url} (pid {chain.pid})", highlight=False)
    ipfs_node = LocalIpfsNode(data_dir)
    ipfs = ipfs_node.up(port=None if ipfs_node.info() else _port_or_free(DEMO_IPFS_PORT))
    console.print(f"ipfs:  js-ipfs RPC API at {ipfs.api_url} (pid {ipfs.pid})", highlight=False)

    store = open_store("embedded", data_dir)
    weights, _ = genesis_weights(config.task, config.seed, config.recipe())
    genesis = store.put(weights)
    deployed = load_deployments(deployments_path(data_dir))
    w3 = Web3(Web3.HTTPProvider(chain.url))
    if deployed is None or not w3.eth.get_code(deployed.address("ChainMLLedger")):
        # The development parameters (chainml/chain/deploy_params.json): an aggregator, three
        # validators, and version 0 = the seeded sine model stored above (the same CID).
        deployed = run_deploy_script(chain.url, data_dir, task=config.task, seed=config.seed)
    print_deployments(deployed)
    console.print(f"genesis weights: {cid_str(genesis)}", highlight=False)

    run_dir = data_dir / "runs" / "demo"
    rows = run_swarm(
        config, data_dir=data_dir, run_dir=run_dir, rpc_url=chain.url, ipfs="embedded",
        workers=workers,
    )  # fmt: skip
    print_summary(rows, every=5)
    _learning_table(store, genesis, rows)
    verify(ctx, rpc_url=chain.url, deployments=None, ipfs="embedded")

    final = rows[-1]["aggregate_cid"] if rows and rows[-1]["aggregate_cid"] else None
    if final:
        _copy_to_ipfs_node(data_dir, final, ipfs.api_url)
    _report(run_dir)
    console.print(
        "\nnext: `.venv/bin/chainml inspect versions`, `... inspect rounds`, "
        f"`... inspect node <address>`; open {run_dir / 'report' / 'report.html'}; "
        "`make down` stops the chain and the IPFS node.",
        highlight=False,
    )


def _learning_table(store: Store, genesis: CID | str, rows: list[dict[str, Any]]) -> None:
    """Genesis against the final version, both protocols, on 1,000 fresh held-out tasks."""
    from chainml.meta.protocols import REPORT_TASKS, score
    from chainml.meta.tasks import get_family

    finalized = [r for r in rows if r.get("aggregate_cid")]
    if not finalized:
        return
    family = get_family("sine")
    table = Table(title=f"learning: {REPORT_TASKS:,} held-out sine tasks (mean ± 95% CI)")
    for column in ("weights", "MAML k=0", "k=1", "k=5", "k=10", "device protocol"):
        table.add_column(column, justify="right")
    for label, cid in (
        ("genesis", genesis),
        (f"v{finalized[-1]['version']}", finalized[-1]["aggregate_cid"]),
    ):
        version = decode_version(store.get(cid))
        s = score(version.params, family, version.recipe)
        cells = [f"{s.maml[k]:.3f} ± {s.maml_ci95[k]:.3f}" for k in (0, 1, 5, 10)]
        table.add_row(label, *cells, f"{s.device:.3f} ± {s.device_ci95:.3f}")
    console.print(table)


def _copy_to_ipfs_node(data_dir: Path, cid: str, api_url: str) -> None:
    """Show that the IPFS node computes the same CID for the final weights."""
    embedded = open_store("embedded", data_dir)
    try:
        remote = open_store(api_url, data_dir)
        copied = cid_str(remote.put(embedded.get(cid)))
    except ServiceError as exc:
        console.print(f"[yellow]could not copy the final weights to {api_url}: {exc}[/]")
        return
    same = "same CID" if copied == cid else f"DIFFERENT CID {copied}"
    console.print(f"final weights pinned on the js-ipfs node: {copied} ({same})", highlight=False)


def _report(run_dir: Path) -> None:
    from chainml.report.build import build_report

    files = build_report(run_dir)
    console.print(f"report: {files.html}", highlight=False)
