"""The reputation root (issue 12, item 5), through the real swarm on a real Anvil: validators
recompute the round's reputation table and vote down a proposal whose root is wrong (the
wave-1 validator, which never looked, approves it), and a node excluded once proves its
reputation and is included again, with ``chainml verify`` replaying every table."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from chainml.chain.deployments import deployments_path, load_deployments
from chainml.chain.types import ProposalStatus, RoundStatus
from chainml.cli.main import main
from chainml.protocol.review import ReviewJob, review
from chainml.protocol.settlement import ReputationTable, latest_table, table_ref
from chainml.swarm.config import SwarmConfig
from chainml.swarm.executor import InlineExecutor
from chainml.swarm.orchestrator import RoundTimes, Swarm
from chainml.swarm.services import connect
from tests.security.conftest import SwarmEnv, wave1_module


def _forged(table: ReputationTable, node: str, bonus: int) -> ReputationTable:
    """``table`` with ``node``'s score raised by ``bonus``: what a colluding aggregator would
    publish to lift a node over the gate."""
    scores = table.as_dict()
    scores[node.lower()] += bonus
    return ReputationTable.of(table.round, table.parent_root, table.initial, scores)


def test_a_wrong_reputation_root_is_voted_down_and_replaced(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("wrong-root")
    services = connect(env.rpc_url, env.data_dir, "embedded", task="sine", seed=0)
    swarm = Swarm(
        SwarmConfig(nodes=6, rounds=1, mode="relayed"),
        services,
        env.data_dir / "runs" / "wrong-root",
        InlineExecutor(),
    )
    swarm.ensure_registered()
    round_id = swarm.current_or_new_round()
    swarm.commit_phase(round_id, RoundTimes())
    evidence, outcome = swarm.aggregator.build(round_id)
    lifted = outcome.included[0]
    forged = dataclasses.replace(outcome, reputation=_forged(outcome.reputation, lifted, 5_000))
    assert forged.weights_cid == outcome.weights_cid  # same aggregate, same node lists
    bad = swarm.aggregator.propose(round_id, evidence, forged)

    job = ReviewJob(
        validator=services.validators[0], proposal_id=bad, rpc_url=env.rpc_url,
        ledger_address=services.deployments.address("ChainMLLedger"),
        voting_address=services.deployments.address("ChainMLVoting"), store_spec="embedded",
        data_dir=str(env.data_dir), from_block=services.deployments.block_number,
    )  # fmt: skip
    wave1 = wave1_module("chainml/swarm/validator.py", "wave1_validator_rep").review(job)
    assert wave1.approve  # before: the reputation outcome was never checked
    verdict = review(job)
    assert not verdict.approve and "reputation root differs" in verdict.reason, verdict

    swarm.vote_phase(round_id, RoundTimes())  # every validator recomputes and votes no
    proposal = services.ledger.proposal(bad)
    assert proposal.status == ProposalStatus.REJECTED
    assert proposal.no == len(services.validators) and proposal.yes == 0
    swarm.drive(round_id)  # the honest proposal, with the recomputed table, finalizes
    assert RoundStatus(services.ledger.round_info(round_id).status) == RoundStatus.FINALIZED
    ref = table_ref(services.ledger, round_id, services.deployments.block_number)
    assert ref.root == outcome.reputation.root and ref.cid == outcome.reputation.cid
    assert services.ledger.reputation_root() == (outcome.reputation.root, round_id)
    table = latest_table(services.ledger, services.store, services.deployments.block_number)
    assert table.score(lifted) == 1_010  # the honest table: one inclusion


@pytest.mark.slow
def test_a_node_excluded_once_proves_its_reputation_and_is_included_again(
    make_env: Callable[[str], SwarmEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    """Multi-Krum excludes nodes every round; in direct mode each excluded node (below the
    initial score) can commit again only with a proof against the latest root, which
    settlement provides, so it is included in a later round. Reputation in the run's rows is
    the table's, and ``verify`` replays every table."""
    env = make_env("recover")
    rows = env.run(SwarmConfig(nodes=8, rounds=3, mode="direct", aggregation="krum"))
    assert [r["status"] for r in rows] == ["finalized"] * 3
    lines = (env.data_dir / "runs" / "run" / "nodes.jsonl").read_text().splitlines()
    nodes = [json.loads(line) for line in lines if line]
    status = {(n["node"], n["round"]): n["status"] for n in nodes}
    recovered = [
        node
        for (node, rnd), s in status.items()
        if s == "excluded" and any(status.get((node, later)) == "included" for later in (2, 3))
    ]
    assert recovered, status
    ledger, store = env.ledger(), env.store()
    deployments = load_deployments(deployments_path(env.data_dir))
    assert deployments is not None
    from_block = deployments.block_number
    table = latest_table(ledger, store, from_block)
    expected = {n["node"]: 1_000 for n in nodes}
    for n in nodes:
        expected[n["node"]] += {"included": 10, "excluded": -50}.get(n["status"], 0)
    assert {n: table.score(n) for n in expected} == expected
    last = {n["node"]: n["reputation"] for n in nodes if n["round"] == 3}
    assert last == expected  # the rows report the table's reputation
    for node in recovered:
        info = ledger.node_info(node)
        assert info.must_prove == (expected[node] < 1_000)
    store.close()
    assert main(["--data-dir", str(env.data_dir), "verify"]) == 0, capsys.readouterr().out
