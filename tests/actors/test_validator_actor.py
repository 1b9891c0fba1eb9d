"""A validator actor keeps nothing in memory that a restart would lose, and its secret is what
opens its vote: a fresh object with the same secret file reveals what the first committed; one
with another secret cannot (and sends nothing)."""

from __future__ import annotations

from pathlib import Path

from chainml.actors.validator import Validator, validator_secret
from chainml.chain.types import VoteState
from chainml.protocol.review import review
from chainml.services.chain import LocalChain
from chainml.swarm.config import SwarmConfig
from chainml.swarm.executor import InlineExecutor
from chainml.swarm.orchestrator import RoundTimes, Swarm
from chainml.swarm.services import connect


def test_a_fresh_validator_object_reveals_what_the_first_committed(tmp_path: Path) -> None:
    chain = LocalChain(tmp_path)
    try:
        url = chain.up().url
        config = SwarmConfig(nodes=4, rounds=1, mode="relayed")
        services = connect(url, tmp_path, "embedded", task="sine", seed=0)
        swarm = Swarm(config, services, tmp_path / "run", InlineExecutor())
        swarm.ensure_registered()
        round_id = swarm.current_or_new_round()
        swarm.commit_phase(round_id, RoundTimes())
        evidence, outcome = swarm.aggregator.build(round_id)
        proposal = swarm.aggregator.propose(round_id, evidence, outcome)

        first, second, third = swarm.validators
        for v in (first, second, third):
            assert v.commit(proposal, review(v.review_job(proposal)))
        assert not first.commit(proposal, review(first.review_job(proposal)))  # once only
        assert services.ledger.proposal(proposal).commit_phase_over

        # The same validator with another secret (a lost or replaced file) cannot open its vote.
        stranger = validator_secret(tmp_path, first.account, tmp_path / "other-secret.key")
        impostor = Validator(services.ledger, first.account, first.setup, stranger)
        assert impostor.committed_vote(proposal) is None
        assert not impostor.reveal(proposal)
        assert first.state(proposal) == VoteState.COMMITTED

        # A new object, as after a restart: the secret file and the chain are all it needs.
        restarted = Validator(services.ledger, first.account, first.setup)
        assert restarted.committed_vote(proposal) is True
        assert restarted.reveal(proposal)
        assert services.ledger.vote_of(proposal, first.address).approve is True
        assert not restarted.reveal(proposal)  # revealed already: nothing to send
    finally:
        chain.down()
