"""The metrics file a proposal names (issue 13): validators recompute it from chain and IPFS
data and vote down a proposal whose file differs (the pre-fix validator, which never looked,
approves it), ``chainml verify`` names the version whose recorded file differs (the pre-fix
verify passes it), and a hostile file is a one-line error. Real Anvil, embedded store.

The swarm's round rows do not read the file: their held-out curves and device figures are the
harness's own observations of the finalized weights."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

import chainml.protocol.review as review_module
import chainml.protocol.verify as verify_module
import chainml.swarm.orchestrator as orchestrator
from chainml.chain.types import ProposalStatus, RoundStatus
from chainml.cli.main import main
from chainml.errors import IntegrityError
from chainml.protocol.codecs import canonical_json
from chainml.protocol.payloads import decode_version
from chainml.protocol.review import ReviewJob, judge, recompute
from chainml.protocol.round_metrics import (
    MAX_METRICS_BYTES,
    RoundMetrics,
    explain_metrics,
    proposed_metrics_cid,
)
from chainml.protocol.verify import verify_history
from chainml.storage.cid import cid_str, onchain_to_str
from chainml.storage.unixfs import file_cid
from chainml.swarm.aggregator import TamperingAggregator, flatter_losses
from chainml.swarm.config import SwarmConfig
from chainml.swarm.executor import InlineExecutor
from chainml.swarm.harness import run_swarm
from chainml.swarm.metrics import curve
from chainml.swarm.orchestrator import EVAL_INNER_LR, RoundTimes, Swarm
from chainml.swarm.services import Services, connect
from tests.security.conftest import SwarmEnv
from tests.security.prefix import METRICS_FIX_PARENT, functions_at

GENUINE = RoundMetrics(
    round=3, base_version=2, base_weights=cid_str(file_cid(b"base")),
    weights=cid_str(file_cid(b"new")), aggregation="guard", rule_id=6, committed=5,
    included=4, excluded=1, invalid=1, rejected_leaves=0, samples=20,
    reported_loss_before=4.939, reported_loss_after=0.25,
)  # fmt: skip


def deep_metrics(depth: int = 1_500) -> bytes:
    """A metrics file whose ``round`` is nested ``depth`` lists deep (under the size limit)."""
    nested = "[" * depth + "]" * depth
    return json.dumps(GENUINE.as_json()).replace('"round": 3', f'"round": {nested}').encode()


def pre_fix_judge() -> Callable[..., object]:
    """``judge`` as it was before validators recomputed the metrics file."""
    return functions_at(METRICS_FIX_PARENT, review_module, ["judge"])["judge"]


def _job(env: SwarmEnv, services: Services, proposal_id: int) -> ReviewJob:
    return ReviewJob(
        validator=services.validators[0], proposal_id=proposal_id, rpc_url=env.rpc_url,
        ledger_address=services.deployments.address("ChainMLLedger"),
        voting_address=services.deployments.address("ChainMLVoting"), store_spec="embedded",
        data_dir=str(env.data_dir), from_block=services.deployments.block_number,
    )  # fmt: skip


def test_a_forged_metrics_file_is_voted_down_and_the_honest_one_finalizes(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("forged-metrics")
    services = connect(env.rpc_url, env.data_dir, "embedded", task="sine", seed=0)
    swarm = Swarm(
        SwarmConfig(nodes=6, rounds=1, mode="relayed"),
        services,
        env.data_dir / "runs" / "forged-metrics",
        InlineExecutor(),
    )
    swarm.ensure_registered()
    round_id = swarm.current_or_new_round()
    swarm.commit_phase(round_id, RoundTimes())
    evidence, outcome = swarm.aggregator.build(round_id)
    honest = RoundMetrics.of(evidence, outcome)

    # The bad aggregator proposes the real aggregate and lists with a flattering metrics file.
    forger = TamperingAggregator(swarm.aggregator, tamper=None, forge_metrics=flatter_losses)
    bad = forger.propose(round_id, evidence, outcome)
    (event,) = services.ledger.proposals(round_id, services.deployments.block_number)
    assert onchain_to_str(*event.proposal.aggregate) == outcome.weights_cid
    forged_cid = proposed_metrics_cid(event.proposal)
    assert forged_cid is not None and forged_cid != honest.cid
    forged = RoundMetrics.decode(services.store.get(forged_cid))
    assert honest.differences(forged) == ["reported_loss_after"]

    job = _job(env, services, bad)
    done = recompute(dataclasses.replace(job, round=round_id))
    before = pre_fix_judge()(job, done)
    assert before.approve, before  # before the fix: the metrics file was never checked
    verdict = judge(job, done)
    assert not verdict.approve and verdict.reason.startswith("metrics file differs"), verdict
    assert honest.cid in verdict.reason and forged_cid in verdict.reason

    swarm.vote_phase(round_id, RoundTimes())  # every validator recomputes the file, votes no
    proposal = services.ledger.proposal(bad)
    assert proposal.status == ProposalStatus.REJECTED
    assert proposal.no == len(services.validators) and proposal.yes == 0
    swarm.drive(round_id)  # the honest proposal, with the recomputed file, finalizes
    ledger = services.ledger
    assert RoundStatus(ledger.round_info(round_id).status) == RoundStatus.FINALIZED
    version = ledger.version(ledger.current_version())
    assert onchain_to_str(*version.metrics) == honest.cid
    assert RoundMetrics.decode(services.store.get(honest.cid)) == honest
    row = swarm.log.completed_rounds()[round_id]
    assert row["metrics_cid"] == honest.cid and row["aggregate_cid"] == outcome.weights_cid


@pytest.mark.parametrize(
    ("forgery", "why"),
    [("flattered", "its reported_loss_after differ"), ("deep", "nested too deeply")],
)
def test_verify_names_the_version_whose_metrics_file_is_forged(
    make_env: Callable[[str], SwarmEnv],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    forgery: str,
    why: str,
) -> None:
    """Validators running the pre-fix check let a forged file of round 2 finalize: the pre-fix
    verify passes the history, today's names version 2 (and its file) in one line. The round
    rows, which no longer read the file, carry the harness's observations of the weights."""
    env = make_env(forgery)
    monkeypatch.setattr(orchestrator, "judge", pre_fix_judge())

    def forge(real: bytes) -> bytes:
        if RoundMetrics.decode(real).round != 2:
            return real
        return flatter_losses(real) if forgery == "flattered" else deep_metrics()

    def compose(swarm: Swarm) -> None:
        swarm.aggregator = TamperingAggregator(swarm.aggregator, tamper=None, forge_metrics=forge)

    config = SwarmConfig(nodes=4, rounds=2, mode="relayed")
    rows = run_swarm(
        config, data_dir=env.data_dir, run_dir=env.data_dir / "runs" / "run",
        rpc_url=env.rpc_url, ipfs="embedded", workers=1, show_progress=False, compose=compose,
    )  # fmt: skip
    assert [r["status"] for r in rows] == ["finalized", "finalized"]
    ledger, store = env.ledger(), env.store()
    from_block = 0  # every event since genesis
    forged_cid = onchain_to_str(*ledger.version(2).metrics)
    assert rows[1]["metrics_cid"] == forged_cid
    try:
        old = functions_at(METRICS_FIX_PARENT, verify_module)["verify_history"]
        assert [c.ok for c in old(ledger, store, from_block)] == [True, True]
        checks = verify_history(ledger, store, from_block)
        for row in rows:  # the rows' held-out loss is the finalized weights', not the file's
            params = decode_version(store.get(row["aggregate_cid"])).params
            mine = curve(params, "sine", eval_tasks=config.eval_tasks, shots=config.eval_shots,
                         inner_lr=EVAL_INNER_LR, seed=config.seed)  # fmt: skip
            assert row["heldout"]["loss_after"] == mine["10"]
    finally:
        store.close()
    assert [c.ok for c in checks] == [True, False]
    bad = checks[-1]
    assert (bad.version, bad.round, bad.kind, bad.fault_cid) == (2, 2, "mismatch", forged_cid)
    assert bad.detail.startswith("metrics mismatch") and why in bad.detail, bad.detail
    assert "\n" not in bad.detail

    assert main(["--data-dir", str(env.data_dir), "verify"]) == 1
    flat = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "version 2 (round 2)" in flat and "MISMATCH metrics mismatch" in flat, flat
    assert forged_cid in flat and "Traceback" not in flat


# -- the file's codec --------------------------------------------------------------------------


def test_the_file_round_trips_and_only_its_canonical_bytes_decode() -> None:
    data = GENUINE.encode()
    assert RoundMetrics.decode(data) == GENUINE
    assert GENUINE.cid == cid_str(file_cid(data))
    body = GENUINE.as_json()
    for variant in (
        json.dumps(body).encode(),  # whitespace
        canonical_json(body | {"note": "trust me"}),  # an extra field
        canonical_json(body | {"included": 4.0}),  # a float count
        canonical_json(body | {"reported_loss": {"before": 4.939, "after": 1}}),  # int loss
    ):
        with pytest.raises(IntegrityError):
            RoundMetrics.decode(variant)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (deep_metrics(), "nested too deeply"),
        (b"[" * 100_000 + b"]" * 100_000, f"over the {MAX_METRICS_BYTES}-byte limit"),
        (GENUINE.encode().replace(b'"round":3', b'"round":1e999'), "'round' must be a whole"),
        (GENUINE.encode().replace(b'"samples":20', b'"samples":' + b"9" * 400), "'samples'"),
        (GENUINE.encode().replace(b'"samples":20', b'"samples":' + b"9" * 5000), "byte limit"),
        (GENUINE.encode().replace(b'"after":0.25', b'"after":-1e999'), "reported_loss.after"),
        (GENUINE.encode().replace(b'"after":0.25', b'"after":' + b"9" * 400), "reported_loss"),
        (GENUINE.encode().replace(b'"committed":5', b'"committed":true'), "'committed'"),
        (GENUINE.encode().replace(b'"guard"', b'"' + b"x" * 64 + b'"'), "'aggregation'"),
        (GENUINE.encode().replace(b'"aggregation":"guard"', b'"aggregation":{}'), "rule name"),
        (GENUINE.encode().replace(GENUINE.weights.encode(), b"Qm-not-a-cid"), "'weights'"),
        (GENUINE.encode().replace(b'"round":3', b'"round":0'), "'round' must be >= 1"),
        (b"\xff\xfe", "not valid JSON"),
        (b"null", "not a chainml metrics file"),
    ],
)
def test_a_hostile_file_is_one_line(data: bytes, says: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        RoundMetrics.decode(data)
    message = str(caught.value)
    assert says in message and "\n" not in message and len(message) < 200, message
    assert explain_metrics(GENUINE, data) == message  # what verify prints


def test_explain_names_the_fields_that_differ() -> None:
    lied = dataclasses.replace(GENUINE, included=5, excluded=0)
    assert explain_metrics(GENUINE, lied.encode()) == "its included, excluded differ"
