"""Dishonest validators through the real contracts (Anvil, commit-reveal voting, the swarm).

Three validators, quorum 2 of 3. Each attack runs twice: with one dishonest validator (a
minority: the defence must hold) and with two (a majority, which the contracts cannot stop:
the run where the attack hurts). The aggregator forges its first proposal of every round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chainml.chain.types import ProposalStatus
from chainml.cli.main import main
from chainml.swarm.config import SwarmConfig
from chainml.swarm.harness import run_swarm
from chainml.swarm.validator_attacks import (
    CopyingValidator,
    composer,
    forfeit_withheld,
)
from tests.swarm.conftest import SwarmEnv

pytestmark = pytest.mark.slow

NODES = 6


def run(
    env: SwarmEnv, attack: str, count: int, rounds: int = 1, forger: bool = True
) -> tuple[list[dict[str, Any]], Any]:
    seen: dict[str, Any] = {}

    def compose(swarm: Any) -> None:
        composer(attack, count)(swarm)
        seen["swarm"] = swarm

    config = SwarmConfig(
        nodes=NODES, rounds=rounds, mode="relayed", attack="bad_aggregator" if forger else None
    )
    rows = run_swarm(
        config,
        data_dir=env.data_dir,
        run_dir=env.data_dir / "runs" / "run",
        rpc_url=env.rpc_url,
        ipfs="embedded",
        workers=1,
        show_progress=False,
        compose=compose,
    )
    return rows, seen["swarm"]


def statuses(env: SwarmEnv, round_id: int) -> list[ProposalStatus]:
    ledger = env.ledger()
    return [ledger.proposal(e.proposal_id).status for e in ledger.proposals(round_id)]


def votes(env: SwarmEnv, round_id: int, validator: str) -> list[bool]:
    ledger = env.ledger()
    return [ledger.vote_of(e.proposal_id, validator).approve for e in ledger.proposals(round_id)]


def verifies(env: SwarmEnv) -> bool:
    return main(["--data-dir", str(env.data_dir), "verify"]) == 0


FORGED_THEN_HONEST = [ProposalStatus.REJECTED, ProposalStatus.ACCEPTED]


@pytest.mark.parametrize("attack", ["copy", "collude"])
def test_a_dishonest_minority_of_validators_cannot_pass_a_forged_aggregate(
    attack: str, make_env: Callable[[str], SwarmEnv]
) -> None:
    env = make_env(attack)
    rows, swarm = run(env, attack, count=1, rounds=2)
    bad, honest = swarm.validators[0], swarm.validators[1:]
    assert [r["status"] for r in rows] == ["finalized", "finalized"]
    for row in rows:
        assert statuses(env, row["round"]) == FORGED_THEN_HONEST
        for v in honest:
            assert votes(env, row["round"], v.address) == [False, True]
        # it said yes to the forgery (copying blindly, or colluding), and the majority held
        expected = [True, True] if attack == "copy" else [True, False]
        assert votes(env, row["round"], bad.address) == expected
    if isinstance(bad, CopyingValidator):
        # commit-reveal: no vote was visible while it could still commit
        assert bad.copied_from_peers == 0 and bad.blind == 4
    assert verifies(env)


@pytest.mark.parametrize("attack", ["copy", "collude"])
def test_a_dishonest_majority_passes_the_forgery(
    attack: str, make_env: Callable[[str], SwarmEnv]
) -> None:
    """The run where the attack hurts: two of three validators reach the quorum."""
    env = make_env(f"{attack}-majority")
    rows, _ = run(env, attack, count=2)
    assert rows[0]["status"] == "finalized"
    assert statuses(env, 1) == [ProposalStatus.ACCEPTED]  # the forged proposal itself
    assert not verifies(env)  # the version on chain is not the rule's aggregate


def test_a_withheld_reveal_is_forfeited_and_the_round_still_finalizes(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("withhold")
    rows, swarm = run(env, "withhold", count=1, rounds=2, forger=False)
    assert [r["status"] for r in rows] == ["finalized", "finalized"]
    ledger = env.ledger()
    addresses = [v.address for v in swarm.validators]
    withholder, honest = addresses[0], addresses[1]
    # undefended: withholding costs nothing until someone calls forfeitVote
    assert ledger.reputation_of(withholder) == ledger.reputation_of(honest)
    last = ledger.proposal(ledger.proposals(2)[-1].proposal_id)
    w3 = ledger.w3
    now = int(w3.eth.get_block("latest")["timestamp"])
    w3.provider.make_request("evm_increaseTime", [last.reveal_deadline - now + 1])
    w3.provider.make_request("evm_mine", [])
    forfeited = forfeit_withheld(ledger, addresses, swarm.s.admin)
    assert [v for _, v in forfeited] == [withholder, withholder]  # one per round, nobody else
    assert ledger.reputation_of(withholder) < ledger.reputation_of(honest)
    assert forfeit_withheld(ledger, addresses, swarm.s.admin) == []  # once only
    assert verifies(env)


def test_a_withholding_majority_stalls_the_round(make_env: Callable[[str], SwarmEnv]) -> None:
    """The run where withholding hurts: two of three never reveal, so no proposal reaches the
    quorum and the round closes without a version."""
    env = make_env("withhold-majority")
    rows, _ = run(env, "withhold", count=2, forger=False)
    assert rows[0]["status"] != "finalized"
    assert env.ledger().current_version() == 0
    assert all(s == ProposalStatus.REJECTED for s in statuses(env, 1))
