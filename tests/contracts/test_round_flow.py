"""A whole round through real transactions, in each commitment mode."""

from __future__ import annotations

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from chainml.chain import eip712
from chainml.chain.errors import ContractRevert
from chainml.chain.merkle import MerkleTree, address_leaf
from chainml.chain.types import (
    Proposal,
    ProposalStatus,
    RoundStatus,
    VoteState,
)
from tests.contracts.conftest import FAST_ROUND, cid, next_table, table_fields, time_travel


def test_deploy_wires_roles_and_genesis(ledger, deployments, admin, aggregator, validators):
    assert set(deployments.contracts) == {"ChainMLLedger", "ChainMLVoting"}
    assert ledger.has_role("admin", admin)
    assert ledger.has_role("aggregator", aggregator)
    assert all(ledger.has_role("validator", v) for v in validators)
    assert ledger.has_role("voting", ledger.voting.address)
    assert ledger.current_version() == 0
    genesis = ledger.version(0)
    assert genesis.round == 0 and genesis.parent == 0
    assert genesis.weights[1] == 0x55
    assert ledger.ledger.functions.validatorCount().call() == len(validators)
    assert ledger.security_params() == FAST_ROUND  # fixed at deployment, not per round


def test_python_digest_matches_contract_and_eth_account(ledger, make_node, sign, open_round):
    node = make_node()
    open_round()
    signed = sign(node)
    c = signed.commitment
    on_chain = ledger.ledger.functions.commitmentDigest(c.as_abi()).call()
    typed = encode_typed_data(
        full_message=eip712.typed_data(c, ledger.chain_id, ledger.ledger.address)
    )
    assert on_chain == eip712.digest(c, ledger.domain_separator)
    assert keccak(b"\x19" + typed.version + typed.header + typed.body) == on_chain


def test_eth_account_sign_typed_data_verifies_on_chain(ledger, make_node, open_round, sign):
    node = make_node()
    open_round()
    c = sign(node).commitment
    sig = node.sign_typed_data(
        full_message=eip712.typed_data(c, ledger.chain_id, ledger.ledger.address)
    )
    signed = eip712.SignedCommitment(c, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"), sig.v)
    receipt = ledger.commit(signed, node)
    (event,) = ledger.receipt_events(ledger.ledger, receipt, "CommitmentAccepted")
    assert event["node"] == node.address and event["updateDigest"] == c.update_digest


def _vote_all(ledger, proposal_id, validators, approvals):
    salts = [keccak(f"salt-{v}".encode()) for v in validators]
    for v, ok, salt in zip(validators, approvals, salts, strict=True):
        ledger.commit_vote(proposal_id, ok, salt, v)
        assert ledger.vote_of(proposal_id, v).state == VoteState.COMMITTED
    assert ledger.proposal(proposal_id).commit_phase_over  # all committed: no waiting
    for v, ok, salt in zip(validators, approvals, salts, strict=True):
        ledger.reveal_vote(proposal_id, ok, salt, v)
        vote = ledger.vote_of(proposal_id, v)
        assert (vote.state, vote.approve) == (VoteState.REVEALED, ok)


def test_full_round(
    mode, w3, ledger, make_node, sign, submit, open_round, aggregator, validators, gateway, rando
):
    nodes = [make_node(gateway=gateway) for _ in range(4)]
    round_id = open_round(min_commitments=3)
    signed = [sign(n) for n in nodes]
    submit(mode, signed, nodes)
    info = ledger.round_info(round_id)
    assert info.commit_count == 4 and info.status == RoundStatus.OPEN
    if mode == "batched":
        assert ledger.batches(round_id)[0].leaf_count == 4
    else:
        assert {e.node for e in ledger.commitments(round_id)} == {n.address for n in nodes}
        assert all(ledger.has_committed(round_id, n.address) for n in nodes)

    ledger.close_commit_phase(round_id, aggregator)
    if mode == "batched":  # the batch can be challenged until its window closes
        time_travel(w3, FAST_ROUND.challenge_window)
    included, excluded = nodes[:3], nodes[3:]
    inc_tree = MerkleTree([address_leaf(n.address) for n in included])
    exc_tree = MerkleTree([address_leaf(n.address) for n in excluded])
    table = next_table(
        ledger, round_id, [n.address for n in included], [n.address for n in excluded]
    )
    proposal = Proposal(
        round=round_id, aggregate=cid("aggregate"), metrics=cid("metrics"),
        included_root=inc_tree.root, included_count=3, included_list=cid("inc"),
        excluded_root=exc_tree.root, excluded_count=1, excluded_list=cid("exc"), rule_id=2,
        **table_fields(table, gated=1),
    )  # fmt: skip
    pid = ledger.propose(proposal, aggregator)
    assert ledger.pending_proposal(round_id) == pid
    _vote_all(ledger, pid, validators, [True, True, False])
    new_version = ledger.finalize(pid, rando)

    assert new_version == 1 == ledger.current_version()
    v = ledger.version(1)
    assert v.parent == 0 and v.round == round_id
    assert v.weights == cid("aggregate") and v.metrics == cid("metrics")
    assert ledger.proposal(pid).status == ProposalStatus.ACCEPTED
    assert ledger.round_info(round_id).status == RoundStatus.FINALIZED

    # Finalizing recorded one root for every node; settling proves only the excluded node,
    # which fell below the initial score (through the short below-initial sub-table).
    assert ledger.reputation_root() == (table.root, round_id)
    assert [table.score(n.address) for n in nodes] == [1_010, 1_010, 1_010, 950]
    excluded_node = excluded[0].address
    assert len(table.proof(excluded_node)) == 1
    ledger.prove_reputations([(excluded_node, 950, table.proof(excluded_node))], rando)
    assert ledger.reputation_of(excluded_node) == 950
    assert ledger.node_info(excluded_node).must_prove
    assert ledger.round_info(round_id).settled_count == 1
    assert ledger.reputation_of(nodes[0].address) == 1_000  # unproven: its cached score
    ledger.prove_reputations([(nodes[0].address, 1_010, table.proof(nodes[0].address))], rando)
    assert ledger.reputation_of(nodes[0].address) == 1_010
    assert ledger.node_info(nodes[0].address).last_settled_round == round_id

    # The next round opens on the new version; commitments on the old base are stale.
    open_round()
    assert ledger.round_info(round_id + 1).base_version == 1


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_python_merkle_proofs_verify_on_chain(
    count, ledger, make_node, sign, submit, open_round, gateway
):
    nodes = [make_node(gateway=gateway, fund=False) for _ in range(count)]
    open_round()
    batch = submit("batched", [sign(n) for n in nodes])
    for i, s in enumerate(batch.leaves):
        assert ledger.prove_leaf(batch.batch_id, s, batch.proof(i)) == batch.tree.leaves[i]
        # The chain accepts the same proof: the challenge gets past inclusion and finds the
        # leaf valid.
        with pytest.raises(ContractRevert) as exc:
            ledger.challenge_leaf(batch.batch_id, s, batch.proof(i), gateway)
        assert exc.value.name == "LedgerLeafValid", str(exc.value)
