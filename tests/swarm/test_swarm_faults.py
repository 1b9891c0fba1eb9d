"""A dishonest aggregator, a device that cannot fit the model, and a killed orchestrator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chainml.chain.types import ProposalStatus, RoundStatus
from chainml.swarm.aggregator import TamperingAggregator
from chainml.swarm.config import SwarmConfig
from chainml.swarm.executor import InlineExecutor
from chainml.swarm.harness import run_swarm
from chainml.swarm.node_job import NodeJob, node_config, run_node
from chainml.swarm.orchestrator import RoundTimes, Swarm
from chainml.swarm.services import connect
from tests.swarm.conftest import SwarmEnv


def test_a_tampered_aggregate_is_voted_down_and_replaced(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("tamper")
    config = SwarmConfig(nodes=6, rounds=1, mode="relayed")
    services = connect(env.rpc_url, env.data_dir, "embedded", task="sine", seed=0)
    swarm = Swarm(config, services, env.data_dir / "runs" / "tamper", InlineExecutor())
    swarm.ensure_registered()
    round_id = swarm.current_or_new_round()
    swarm.commit_phase(round_id, RoundTimes())
    evidence, outcome = swarm.aggregator.build(round_id)
    reputation_before = services.ledger.reputation_of(services.aggregator)

    def flip_last_byte(weights: bytes) -> bytes:
        return weights[:-1] + bytes([weights[-1] ^ 0x01])

    # The bad aggregator is the honest actor behind a wrapper that forges what it publishes.
    bad_aggregator = TamperingAggregator(swarm.aggregator, flip_last_byte)
    bad = bad_aggregator.propose(round_id, evidence, outcome)
    swarm.vote_phase(round_id, RoundTimes())  # validators recompute, all vote no
    proposal = services.ledger.proposal(bad)
    assert proposal.status == ProposalStatus.REJECTED
    assert proposal.no == len(services.validators) and proposal.yes == 0
    assert services.ledger.reputation_of(services.aggregator) < reputation_before

    swarm.drive(round_id)  # the honest aggregate is proposed and finalized
    assert RoundStatus(services.ledger.round_info(round_id).status) == RoundStatus.FINALIZED
    assert env.version_cids()[-1] == outcome.weights_cid


def test_a_device_over_its_ram_budget_refuses(make_env: Callable[[str], SwarmEnv]) -> None:
    env = make_env("budget")
    services = connect(env.rpc_url, env.data_dir, "embedded", task="digits", seed=0)
    weights_cid = env.version_cids()[0]
    job = NodeJob(
        index=0,
        key=b"\x01" * 32,
        round=1,
        base_version=0,
        weights_cid=weights_cid,
        store_spec="embedded",
        data_dir=str(env.data_dir),
        task="digits",
        arch_id="mlp-digits",
        seed=0,
        node=node_config(round_id=1),
        profile="nrf52805-ble",
        domain_separator=services.ledger.domain_separator,
        nonce=0,
    )
    outcome = run_node(job)
    assert outcome.status == "refused"
    assert "nrf52805-ble refuses" in (outcome.error or "")
    assert "adaptation RAM" in (outcome.error or "")
    assert outcome.signed is None and outcome.bytes_up == 0
    assert run_node(job.__class__(**{**job.__dict__, "profile": "nrf52840-ble"})).status == "ok"


def test_refusing_devices_are_reported_and_the_round_still_finalizes(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("mixed")
    config = SwarmConfig(
        nodes=6, rounds=1, task="digits", mode="relayed", profile_mix="nrf52840-ble,nrf52805-ble"
    )
    rows = env.run(config)
    assert rows[0]["status"] == "finalized" and rows[0]["committed"] == 3
    import json

    node_rows = [json.loads(line) for line in (env.data_dir / "runs/run/nodes.jsonl").open()]
    assert sorted(r["status"] for r in node_rows).count("refused") == 3


def swarm_command(env: SwarmEnv, run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "chainml", "--data-dir", str(env.data_dir),
        "swarm", "run", "--nodes", "8", "--rounds", "3", "--mode", "relayed",
        "--workers", "1", "--rpc-url", env.rpc_url, "--run-dir", str(run_dir),
    ]  # fmt: skip


@pytest.mark.slow
def test_resume_after_sigkill_mid_round_matches_an_uninterrupted_run(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    reference = make_env("reference")
    run_swarm(
        SwarmConfig(nodes=8, rounds=3, mode="relayed"),
        data_dir=reference.data_dir,
        run_dir=reference.data_dir / "run",
        rpc_url=reference.rpc_url,
        ipfs="embedded",
        workers=1,
        show_progress=False,
    )

    env = make_env("killed")
    run_dir = env.data_dir / "run"
    proc = subprocess.Popen(
        swarm_command(env, run_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    killed_at = None
    deadline = time.monotonic() + 240
    try:
        # Poll the chain (not a timer) until round 2 has some but not all commitments.
        while time.monotonic() < deadline and proc.poll() is None:
            if (env.data_dir / "deployments.json").exists():
                ledger = env.ledger()
                if ledger.current_round() == 2 and ledger.round_info(2).commit_count > 0:
                    killed_at = int(ledger.round_info(2).commit_count)
                    break
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_at is not None, proc.stderr.read().decode() if proc.stderr else ""

    result = subprocess.run(
        swarm_command(env, run_dir), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ledger = env.ledger()
    assert ledger.current_version() == 3
    assert env.version_cids() == reference.version_cids()
    for round_id in (1, 2, 3):
        events = ledger.commitments(round_id)
        assert len({e.node for e in events}) == len(events) == 8  # nobody committed twice
