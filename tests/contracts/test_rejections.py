"""Bad input: each case must revert with a custom error that names the problem."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_utils import keccak

from chainml.chain.errors import ContractRevert
from chainml.chain.merkle import MerkleTree, address_leaf
from chainml.chain.types import FaultReason, Proposal, RoundStatus
from chainml.errors import IntegrityError
from tests.contracts.conftest import assert_revert, cid, next_table, table_fields, time_travel


def _one(mode, submit, signed, node):
    """Submit one signed commitment in a strict mode."""
    return submit(mode, [signed], [node])


def _refused(mode, ledger, submit, signed, sender, error, **args):
    """A commitment the ledger must not count: direct mode reverts with ``error``; a relay
    skips it (one front-run or replayed item must not revert a whole relay) and says why."""
    round_id = signed.commitment.round
    if mode == "direct":
        with pytest.raises(ContractRevert) as exc:
            _one(mode, submit, signed, sender)
        assert_revert(exc, error, **args)
        return
    before = ledger.round_info(round_id).commit_count
    (receipt,) = _one(mode, submit, signed, sender)
    (skip,) = ledger.receipt_events(ledger.ledger, receipt, "CommitmentSkipped")
    assert skip["node"] == sender.address and skip["reason"] == FaultReason.ALREADY_COMMITTED
    assert ledger.receipt_events(ledger.ledger, receipt, "CommitmentAccepted") == []
    assert ledger.round_info(round_id).commit_count == before


# -- commitments (direct and relayed verify on submission) ---------------------------------


def test_replayed_signature(strict_mode, ledger, make_node, sign, submit, open_round, gateway):
    node = make_node(gateway=gateway)
    open_round()
    signed = sign(node)
    _one(strict_mode, submit, signed, node)
    _refused(
        strict_mode, ledger, submit, signed, node, "LedgerNonceUsed",
        node=node.address, nonce=0, nextNonce=1,
    )  # fmt: skip


def test_replayed_nonce_in_a_later_round(
    strict_mode, ledger, make_node, sign, submit, open_round, gateway, aggregator, w3
):
    node = make_node(gateway=gateway)
    first = open_round(commit_period=60)
    _one(strict_mode, submit, sign(node, nonce=5), node)
    time_travel(w3, 120)
    ledger.close_round(first, aggregator)
    open_round()
    _refused(
        strict_mode, ledger, submit, sign(node, nonce=5), node, "LedgerNonceUsed",
        nonce=5, nextNonce=6,
    )  # fmt: skip


def test_signature_by_another_key(strict_mode, make_node, sign, submit, open_round, gateway):
    node = make_node(gateway=gateway)
    intruder = Account.create()
    open_round()
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node, key=intruder), node)
    assert_revert(exc, "LedgerInvalidSignature", node=node.address, recovered=intruder.address)


def test_unknown_round(strict_mode, make_node, sign, submit, open_round, gateway):
    node = make_node(gateway=gateway)
    open_round()
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node, round=99), node)
    assert_revert(exc, "LedgerRoundUnknown", round=99)


def test_closed_round(
    strict_mode, ledger, make_node, sign, submit, open_round, gateway, aggregator
):
    node, other = make_node(gateway=gateway), make_node(gateway=gateway)
    round_id = open_round()
    _one(strict_mode, submit, sign(other), other)
    ledger.close_commit_phase(round_id, aggregator)
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node), node)
    assert_revert(exc, "LedgerRoundClosed", round=round_id, status=RoundStatus.AGGREGATING)


def test_after_commit_deadline(strict_mode, w3, make_node, sign, submit, open_round, gateway):
    node = make_node(gateway=gateway)
    round_id = open_round(commit_period=60)
    time_travel(w3, 61)
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node), node)
    assert_revert(exc, "LedgerCommitDeadlinePassed", round=round_id)


def test_stale_base_version(strict_mode, make_node, sign, submit, open_round, gateway):
    node = make_node(gateway=gateway)
    round_id = open_round()
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node, base_version=7), node)
    assert_revert(exc, "LedgerStaleBaseVersion", round=round_id, given=7, expected=0)


def test_unregistered_node(strict_mode, make_node, sign, submit, open_round):
    node = make_node(register=False)
    open_round()
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node), node)
    assert_revert(exc, "LedgerNodeNotRegistered", node=node.address)


def test_deactivated_node(strict_mode, ledger, make_node, sign, submit, open_round, gateway, admin):
    node = make_node(gateway=gateway)
    ledger.deactivate_node(node.address, admin)
    open_round()
    with pytest.raises(ContractRevert) as exc:
        _one(strict_mode, submit, sign(node), node)
    assert_revert(exc, "LedgerNodeInactive", node=node.address)
    ledger.reactivate_node(node.address, admin)
    _one(strict_mode, submit, sign(node), node)  # reactivated: accepted again


def test_double_commit(strict_mode, ledger, make_node, sign, submit, open_round, gateway):
    node = make_node(gateway=gateway)
    round_id = open_round()
    _one(strict_mode, submit, sign(node, nonce=0), node)
    second = sign(node, nonce=1, update_digest=keccak(b"other"))
    _refused(
        strict_mode, ledger, submit, second, node, "LedgerAlreadyCommitted",
        round=round_id, node=node.address,
    )  # fmt: skip


def test_direct_commit_sent_by_someone_else(ledger, make_node, sign, open_round):
    node, other = make_node(), make_node()
    open_round()
    with pytest.raises(ContractRevert) as exc:
        ledger.commit(sign(node), other)
    assert_revert(exc, "LedgerSenderNotNode", sender=other.address, node=node.address)


def test_relay_by_a_gateway_the_node_did_not_choose(ledger, make_node, sign, open_round, rando):
    node = make_node(gateway=None)
    round_id = open_round()
    with pytest.raises(ContractRevert) as exc:
        ledger.commit_relayed(round_id, 0, [sign(node)], rando)
    assert_revert(exc, "LedgerGatewayNotAllowed", node=node.address, gateway=rando)


def test_relayed_batch_is_all_or_nothing(ledger, make_node, sign, open_round, gateway):
    good, bad = make_node(gateway=gateway), make_node(gateway=gateway)
    round_id = open_round()
    with pytest.raises(ContractRevert) as exc:
        ledger.commit_relayed(round_id, 0, [sign(good), sign(bad, key=Account.create())], gateway)
    assert_revert(exc, "LedgerInvalidSignature", node=bad.address)
    assert ledger.round_info(round_id).commit_count == 0


# -- batched mode: posting checks, proofs and challenges -----------------------------------


def test_batch_on_closed_or_unknown_round(ledger, make_node, sign, open_round, gateway, aggregator):
    node = make_node(gateway=gateway)
    round_id = open_round()
    with pytest.raises(ContractRevert) as exc:
        ledger.post_batch(round_id + 1, [sign(node, round=round_id + 1)], cid("l"), gateway)
    assert_revert(exc, "LedgerRoundUnknown", round=round_id + 1)
    other = make_node()
    ledger.commit(sign(other), other)
    ledger.close_commit_phase(round_id, aggregator)
    with pytest.raises(ContractRevert) as exc:
        ledger.post_batch(round_id, [sign(node)], cid("l"), gateway)
    assert_revert(exc, "LedgerRoundClosed", round=round_id)


def test_batch_from_a_non_gateway(ledger, make_node, sign, open_round, rando):
    node = make_node()
    round_id = open_round()
    with pytest.raises(ContractRevert) as exc:
        ledger.post_batch(round_id, [sign(node)], cid("l"), rando)
    assert_revert(exc, "LedgerNotGateway", account=rando)


def test_merkle_proof_for_a_wrong_leaf(ledger, make_node, sign, open_round, gateway, rando):
    nodes = [make_node(gateway=gateway, fund=False) for _ in range(4)]
    round_id = open_round(challenge_window=600)
    batch = ledger.post_batch(round_id, [sign(n) for n in nodes], cid("l"), gateway)
    outsider = sign(make_node(gateway=gateway, fund=False))
    with pytest.raises(IntegrityError, match="is not in batch"):  # the off-chain check
        ledger.prove_leaf(batch.batch_id, outsider, batch.proof(0))
    with pytest.raises(ContractRevert) as exc:
        ledger.challenge_leaf(batch.batch_id, outsider, batch.proof(0), rando)
    assert_revert(exc, "LedgerInvalidMerkleProof", root=batch.tree.root)
    with pytest.raises(ContractRevert) as exc:  # right leaf, proof of another leaf
        ledger.challenge_leaf(batch.batch_id, batch.leaves[0], batch.proof(1), rando)
    assert_revert(exc, "LedgerInvalidMerkleProof")


def _bad_batch(ledger, make_node, sign, gateway, round_id, bad):
    nodes = [make_node(gateway=gateway, fund=False) for _ in range(3)]
    signed = [sign(n) for n in nodes] + [bad]
    return ledger.post_batch(round_id, signed, cid("leaves"), gateway)


def test_challenge_voids_a_forged_leaf_and_penalizes_the_gateway(
    ledger, make_node, sign, open_round, gateway, rando
):
    round_id = open_round(challenge_window=600)
    victim = make_node(gateway=gateway, fund=False)
    forged = sign(victim, key=Account.create())
    batch = _bad_batch(ledger, make_node, sign, gateway, round_id, forged)
    assert ledger.round_info(round_id).commit_count == 4
    rep = ledger.reputation_of(gateway)

    receipt = ledger.challenge_leaf(batch.batch_id, forged, batch.proof(3), rando)
    (voided,) = ledger.receipt_events(ledger.ledger, receipt, "LeafVoided")
    assert voided["reason"] == FaultReason.INVALID_SIGNATURE and voided["node"] == victim.address
    assert ledger.reputation_of(gateway) == rep - 100
    assert ledger.round_info(round_id).commit_count == 3
    assert ledger.batch(batch.batch_id).voided_count == 1
    with pytest.raises(IntegrityError, match="was voided"):
        ledger.prove_leaf(batch.batch_id, forged, batch.proof(3))
    with pytest.raises(ContractRevert) as exc:
        ledger.challenge_leaf(batch.batch_id, forged, batch.proof(3), rando)
    assert_revert(exc, "LedgerLeafAlreadyVoided")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("stale_base", FaultReason.STALE_BASE_VERSION),
        ("wrong_round", FaultReason.WRONG_ROUND),
        ("not_behind_gateway", FaultReason.NODE_NOT_ALLOWED),
        ("also_committed_directly", FaultReason.ALREADY_COMMITTED),
    ],
)
def test_challenge_other_faults(case, reason, ledger, make_node, sign, open_round, gateway, rando):
    round_id = open_round(challenge_window=600)
    node = make_node(gateway=None if case == "not_behind_gateway" else gateway)
    if case == "not_behind_gateway":  # the gateway may claim only as many leaves as it has nodes
        make_node(gateway=gateway, fund=False)
    bad = {
        "stale_base": lambda: sign(node, base_version=3),
        "wrong_round": lambda: sign(node, round=round_id + 5),
        "not_behind_gateway": lambda: sign(node),
        "also_committed_directly": lambda: sign(node, nonce=1),
    }[case]()
    if case == "also_committed_directly":
        ledger.commit(sign(node, nonce=0), node)
    batch = _bad_batch(ledger, make_node, sign, gateway, round_id, bad)
    receipt = ledger.challenge_leaf(batch.batch_id, bad, batch.proof(3), rando)
    assert ledger.receipt_events(ledger.ledger, receipt, "LeafVoided")[0]["reason"] == reason


def test_challenge_of_a_valid_leaf(ledger, make_node, sign, open_round, gateway, rando):
    round_id = open_round(challenge_window=600)
    good = sign(make_node(gateway=gateway, fund=False))
    batch = _bad_batch(ledger, make_node, sign, gateway, round_id, good)
    with pytest.raises(ContractRevert) as exc:
        ledger.challenge_leaf(batch.batch_id, good, batch.proof(3), rando)
    assert_revert(exc, "LedgerLeafValid", batchId=batch.batch_id)


def test_challenge_after_the_window(w3, ledger, make_node, sign, open_round, gateway, rando):
    round_id = open_round(challenge_window=60)
    forged = sign(make_node(gateway=gateway, fund=False), key=Account.create())
    batch = _bad_batch(ledger, make_node, sign, gateway, round_id, forged)
    time_travel(w3, 61)
    with pytest.raises(ContractRevert) as exc:
        ledger.challenge_leaf(batch.batch_id, forged, batch.proof(3), rando)
    assert_revert(exc, "LedgerChallengeWindowClosed", batchId=batch.batch_id)


# -- voting --------------------------------------------------------------------------------


@pytest.fixture
def proposal_ready(ledger, make_node, sign, open_round, aggregator):
    """A round with two committed nodes, its commit phase closed, and a Proposal for it."""
    nodes = [make_node() for _ in range(2)]
    round_id = open_round(min_commitments=2)
    for n in nodes:
        ledger.commit(sign(n), n)
    ledger.close_commit_phase(round_id, aggregator)
    tree = MerkleTree([address_leaf(n.address) for n in nodes])
    return Proposal(
        round=round_id,
        aggregate=cid("agg"),
        included_root=tree.root,
        included_count=2,
        included_list=cid("inc"),
        metrics=cid("m"),
    )


def test_proposal_from_a_non_aggregator(ledger, proposal_ready, rando):
    with pytest.raises(ContractRevert) as exc:
        ledger.propose(proposal_ready, rando)
    assert_revert(exc, "VotingNotAggregator", account=rando)


def test_proposal_before_the_commit_phase_ends(ledger, make_node, sign, open_round, aggregator):
    node = make_node()
    round_id = open_round()
    ledger.commit(sign(node), node)
    with pytest.raises(ContractRevert) as exc:
        ledger.propose(
            Proposal(
                round=round_id, aggregate=cid("a"), included_root=b"\1" * 32, included_count=1
            ),
            aggregator,
        )
    assert_revert(exc, "LedgerCommitPhaseOpen", round=round_id)


def test_double_vote(ledger, proposal_ready, aggregator, validators):
    pid = ledger.propose(proposal_ready, aggregator)
    ledger.commit_vote(pid, True, b"\7" * 32, validators[0])
    with pytest.raises(ContractRevert) as exc:
        ledger.commit_vote(pid, False, b"\x08" * 32, validators[0])
    assert_revert(exc, "VotingAlreadyVoted", proposalId=pid, validator=validators[0])


def test_double_reveal(ledger, proposal_ready, aggregator, validators):
    pid = ledger.propose(proposal_ready, aggregator)
    for v in validators:
        ledger.commit_vote(pid, True, b"\7" * 32, v)
    ledger.reveal_vote(pid, True, b"\7" * 32, validators[0])
    with pytest.raises(ContractRevert) as exc:
        ledger.reveal_vote(pid, True, b"\7" * 32, validators[0])
    assert_revert(exc, "VotingAlreadyRevealed", validator=validators[0])


def test_vote_by_a_non_validator(ledger, proposal_ready, aggregator, rando):
    pid = ledger.propose(proposal_ready, aggregator)
    with pytest.raises(ContractRevert) as exc:
        ledger.commit_vote(pid, True, b"\7" * 32, rando)
    assert_revert(exc, "VotingNotValidator", account=rando)


def test_reveal_before_commit_phase_ends_and_wrong_salt(
    ledger, proposal_ready, aggregator, validators
):
    pid = ledger.propose(proposal_ready, aggregator)
    ledger.commit_vote(pid, True, b"\7" * 32, validators[0])
    with pytest.raises(ContractRevert) as exc:
        ledger.reveal_vote(pid, True, b"\7" * 32, validators[0])
    assert_revert(exc, "VotingCommitPhaseActive", proposalId=pid)
    for v in validators[1:]:
        ledger.commit_vote(pid, True, b"\7" * 32, v)
    with pytest.raises(ContractRevert) as exc:  # copying a vote needs the salt
        ledger.reveal_vote(pid, False, b"\7" * 32, validators[0])
    assert_revert(exc, "VotingRevealMismatch", validator=validators[0])


def test_finalize_without_quorum(ledger, proposal_ready, aggregator, validators, rando):
    pid = ledger.propose(proposal_ready, aggregator)
    for v in validators:
        ledger.commit_vote(pid, True, b"\7" * 32, v)
    ledger.reveal_vote(pid, True, b"\7" * 32, validators[0])
    with pytest.raises(ContractRevert) as exc:
        ledger.finalize(pid, rando)
    assert_revert(exc, "VotingQuorumNotReached", proposalId=pid, yes=1, required=2)


def test_rejected_proposal_is_penalized_and_replaced(
    ledger, proposal_ready, aggregator, validators, rando
):
    pid = ledger.propose(proposal_ready, aggregator)
    with pytest.raises(ContractRevert) as exc:  # one proposal at a time per round
        ledger.propose(proposal_ready, aggregator)
    assert_revert(exc, "VotingProposalPending", proposalId=pid)
    with pytest.raises(ContractRevert) as exc:
        ledger.reject(pid, rando)
    assert_revert(exc, "VotingRejectionNotAllowed", proposalId=pid)
    for v in validators:
        ledger.commit_vote(pid, False, b"\5" * 32, v)
    for v in validators[:2]:
        ledger.reveal_vote(pid, False, b"\5" * 32, v)
    rep = ledger.reputation_of(aggregator)
    ledger.reject(pid, rando)  # two no votes of three: quorum is impossible
    assert ledger.reputation_of(aggregator) == rep - 100
    with pytest.raises(ContractRevert) as exc:
        ledger.finalize(pid, rando)
    assert_revert(exc, "VotingProposalNotPending", proposalId=pid)

    replacement = ledger.propose(proposal_ready, aggregator)
    for v in validators:
        ledger.commit_vote(replacement, True, b"\6" * 32, v)
    for v in validators:
        ledger.reveal_vote(replacement, True, b"\6" * 32, v)
    assert ledger.finalize(replacement, rando) == 1


def test_expired_vote_is_rejected(w3, ledger, proposal_ready, aggregator, validators, rando):
    pid = ledger.propose(proposal_ready, aggregator)
    ledger.commit_vote(pid, True, b"\7" * 32, validators[0])
    time_travel(w3, 1_300)  # past the commit (600 s) and reveal (600 s) periods
    with pytest.raises(ContractRevert) as exc:
        ledger.reveal_vote(pid, True, b"\7" * 32, validators[0])
    assert_revert(exc, "VotingRevealPhaseOver", proposalId=pid)
    ledger.reject(pid, rando)


# -- round closing and reputation settlement -----------------------------------------------


def test_stalled_round_closes_without_a_version(
    w3, ledger, make_node, sign, open_round, rando, aggregator
):
    node = make_node()
    round_id = open_round(commit_period=60, min_commitments=3)
    ledger.commit(sign(node), node)
    with pytest.raises(ContractRevert) as exc:
        ledger.close_round(round_id, rando)
    assert_revert(exc, "LedgerCloseNotAllowed", round=round_id, account=rando)
    with pytest.raises(ContractRevert) as exc:
        ledger.close_commit_phase(round_id, aggregator)
    assert_revert(exc, "LedgerNotEnoughCommitments", count=1, required=3)
    time_travel(w3, 61)
    with pytest.raises(ContractRevert) as exc:
        ledger.propose(
            Proposal(
                round=round_id, aggregate=cid("a"), included_root=b"\1" * 32, included_count=1
            ),
            aggregator,
        )
    assert_revert(exc, "LedgerNotEnoughCommitments", round=round_id)
    ledger.close_round(round_id, rando)  # anyone: the round missed its minimum
    assert ledger.round_info(round_id).status == RoundStatus.CLOSED
    assert ledger.current_version() == 0
    assert open_round() == round_id + 1


def test_open_round_while_one_is_active_or_on_a_stale_base(ledger, open_round, aggregator, rando):
    round_id = open_round()
    with pytest.raises(ContractRevert) as exc:
        open_round()
    assert_revert(exc, "LedgerRoundStillActive", round=round_id)
    with pytest.raises(ContractRevert) as exc:
        ledger.close_commit_phase(round_id, rando)
    assert_revert(exc, "LedgerUnauthorized", account=rando)


def test_reputation_proofs_reject_forgeries_and_settle_once(
    ledger, proposal_ready, make_node, aggregator, validators, rando
):
    """A round's reputation table is proven against the root its finalization recorded: a
    forged score (or any proof before a root exists) is refused on chain, a node that fell
    below the initial score settles once, and the next round waits for that settlement."""
    nodes = [e.node for e in ledger.commitments(proposal_ready.round)]
    table = next_table(ledger, proposal_ready.round, included=nodes[1:], excluded=nodes[:1])
    assert table.score(nodes[0]) == 950 and table.score(nodes[1]) == 1_010
    proposal = dataclasses.replace(proposal_ready, **table_fields(table, gated=1))
    with pytest.raises(ContractRevert) as exc:  # no root yet: nothing can be proven
        ledger.prove_reputations([(nodes[0], 950, table.proof(nodes[0]))], rando)
    assert_revert(exc, "LedgerInvalidMerkleProof", root=b"\0" * 32)
    pid = ledger.propose(proposal, aggregator)
    for v in validators:
        ledger.commit_vote(pid, True, b"\7" * 32, v)
    for v in validators:
        ledger.reveal_vote(pid, True, b"\7" * 32, v)
    ledger.finalize(pid, rando)
    assert ledger.reputation_root() == (table.root, proposal_ready.round)
    with pytest.raises(ContractRevert) as exc:
        ledger.open_round(aggregator)
    assert_revert(exc, "LedgerSettlementPending", round=proposal_ready.round, settled=0, total=1)
    with pytest.raises(ContractRevert) as exc:  # the excluded node claims its old score
        ledger.prove_reputations([(nodes[0], 1_000, table.proof(nodes[0]))], rando)
    assert_revert(exc, "LedgerInvalidMerkleProof", root=table.root)
    with pytest.raises(ContractRevert) as exc:  # someone else's proof
        ledger.prove_reputations([(nodes[0], 950, table.proof(nodes[1]))], rando)
    assert_revert(exc, "LedgerInvalidMerkleProof")
    outsider = make_node(fund=False)
    with pytest.raises(ContractRevert) as exc:
        ledger.prove_reputations([(Account.create().address, 1_000, [])], rando)
    assert_revert(exc, "LedgerNodeNotRegistered")
    assert ledger.reputation_of(outsider.address) == 1_000  # registered after: initial
    receipt = ledger.prove_reputations([(nodes[0], 950, table.proof(nodes[0]))], rando)
    (proven,) = ledger.receipt_events(ledger.ledger, receipt, "ReputationProven")
    assert (proven["score"], proven["mustProve"]) == (950, True)
    assert ledger.receipt_events(ledger.ledger, receipt, "RoundSettled")[0]["nodes"] == 1
    info = ledger.node_info(nodes[0])
    assert (info.reputation, info.last_settled_round, info.must_prove) == (
        950, proposal_ready.round, True,
    )  # fmt: skip
    again = ledger.prove_reputations([(nodes[0], 950, table.proof(nodes[0]))], rando)
    assert not ledger.receipt_events(ledger.ledger, again, "ReputationProven")  # settled once
    assert ledger.round_info(proposal_ready.round).settled_count == 1
    ledger.open_round(aggregator)


def test_registry_admin_only_and_duplicates(ledger, make_node, admin, rando):
    node = make_node()
    with pytest.raises(ContractRevert) as exc:
        ledger.register_node(node.address, cid("p"), admin)
    assert_revert(exc, "LedgerNodeAlreadyRegistered", node=node.address)
    with pytest.raises(ContractRevert) as exc:
        ledger.deactivate_node(node.address, rando)
    assert_revert(exc, "AccessControlUnauthorizedAccount", account=rando)
    info = ledger.node_info(node.address)
    assert info.registered and info.active and info.reputation == 1_000
    assert info.profile == cid(f"profile-{node.address}")
