"""Reputation through the round's root, with real transactions: the on-chain gate of every
commitment mode is the latest reputation table's, as validators apply it off chain, and a
node excluded once proves its score and commits again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from chainml.chain.client import Ledger
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.errors import ContractRevert
from chainml.chain.merkle import MerkleTree, address_leaf
from chainml.chain.types import FaultReason, Proposal, ReputationParams
from chainml.protocol.evidence import gather_round
from chainml.protocol.payloads import encode_leaves
from chainml.protocol.settlement import ReputationTable
from chainml.storage.cid import cid_to_onchain
from chainml.storage.embedded import EmbeddedStore
from tests.contracts.conftest import (
    FAST_ROUND,
    assert_revert,
    cid,
    next_table,
    table_fields,
)


@pytest.fixture
def store(tmp_path: Path):
    s = EmbeddedStore(tmp_path / "ipfs")
    yield s
    s.close()


def _finalize(
    ledger: Ledger,
    store: EmbeddedStore,
    round_id: int,
    included: Sequence[str],
    excluded: Sequence[str],
    prior: ReputationTable | None,
    aggregator: str,
    validators: Sequence[str],
) -> ReputationTable:
    """Propose and finalize ``round_id`` with its real reputation table (stored)."""
    table = next_table(ledger, round_id, included, excluded, prior)
    store.put(table.encode())
    gated = len(table.newly_gated(prior or ReputationTable.genesis(table.initial)))
    proposal = Proposal(
        round=round_id,
        aggregate=cid(f"agg-{round_id}"),
        included_root=MerkleTree([address_leaf(n) for n in included]).root,
        included_count=len(included),
        excluded_root=MerkleTree([address_leaf(n) for n in excluded]).root,
        excluded_count=len(excluded),
        **table_fields(table, gated),
    )
    pid = ledger.propose(proposal, aggregator)
    for v in validators:
        ledger.commit_vote(pid, True, b"\5" * 32, v)
    for v in validators:
        ledger.reveal_vote(pid, True, b"\5" * 32, v)
    ledger.finalize(pid, aggregator)
    return table


def test_gated_node_is_refused_in_every_mode_as_validators_gate_it(
    w3, ledger, store, make_node, sign, admin, aggregator, validators, gateway, rando
):
    harsh = Ledger.from_deployments(
        w3,
        deploy(
            w3, admin,
            DeployParams(aggregators=(aggregator,), validators=tuple(validators),
                         security=FAST_ROUND, reputation=ReputationParams(exclusion_penalty=400)),
        ),
    )  # fmt: skip
    harsh.deposit_bond(FAST_ROUND.gateway_bond, gateway)
    nodes: list[LocalAccount] = [make_node(register=False) for _ in range(3)]
    harsh.register_nodes([n.address for n in nodes], [cid("p")] * 3, admin, gateway=gateway)
    low, good, other = nodes
    first = harsh.open_round(aggregator)
    for n in nodes:
        harsh.commit(harsh.sign(n, sign(n, round=first).commitment), n)
    harsh.close_commit_phase(first, aggregator)
    table = _finalize(
        harsh, store, first, [good.address, other.address], [low.address], None, aggregator,
        validators,
    )  # fmt: skip
    assert table.score(low.address) == 600
    harsh.prove_reputations([(low.address, 600, table.proof(low.address))], rando)

    second = harsh.open_round(aggregator)
    signed = harsh.sign(low, sign(low, round=second, base_version=1, nonce=1).commitment)
    with pytest.raises(ContractRevert) as exc:  # direct
        harsh.commit(signed, low)
    assert_revert(exc, "LedgerReputationTooLow", node=low.address, score=600, minimum=700)
    receipt = harsh.commit_relayed(second, 1, [signed], gateway)  # relayed: skipped
    (skip,) = harsh.receipt_events(harsh.ledger, receipt, "CommitmentSkipped")
    assert skip["reason"] == FaultReason.REPUTATION_TOO_LOW
    leaf = harsh.sign(good, sign(good, round=second, base_version=1, nonce=1).commitment)
    batch = harsh.post_batch(
        second, [signed, leaf], cid_to_onchain(store.put(encode_leaves(second, [signed, leaf]))),
        gateway,
    )  # fmt: skip
    evidence = gather_round(harsh, store, second)  # off chain: the same table, the same gate
    assert [u.node for u in evidence.updates] == [good.address]
    assert "below the round's minimum 700" in evidence.rejected[0].reason
    receipt = harsh.challenge_leaf(batch.batch_id, signed, batch.proof(0), rando)  # on chain
    (voided,) = harsh.receipt_events(harsh.ledger, receipt, "LeafVoided")
    assert voided["reason"] == FaultReason.REPUTATION_TOO_LOW
    assert harsh.round_info(second).commit_count == 1


def test_node_excluded_once_proves_its_score_and_commits_again(
    ledger, store, make_node, sign, open_round, aggregator, validators, rando
):
    node, peer = make_node(), make_node()
    first = open_round()
    for n in (node, peer):
        ledger.commit(sign(n), n)
    ledger.close_commit_phase(first, aggregator)
    t1 = _finalize(
        ledger, store, first, [peer.address], [node.address], None, aggregator, validators
    )
    with pytest.raises(ContractRevert) as exc:  # the excluded node is not settled yet
        ledger.open_round(aggregator)
    assert_revert(exc, "LedgerSettlementPending", settled=0, total=1)
    ledger.prove_reputations([(node.address, 950, t1.proof(node.address))], rando)
    assert ledger.node_info(node.address).must_prove

    second = ledger.open_round(aggregator)
    ledger.commit(sign(node, nonce=1), node)  # proven 950 >= 700: it may commit
    ledger.close_commit_phase(second, aggregator)
    t2 = _finalize(ledger, store, second, [node.address], [], t1, aggregator, validators)
    assert t2.score(node.address) == 960 and t2.parent_root == t1.root

    third = ledger.open_round(aggregator)  # nothing newly gated: no settlement needed
    with pytest.raises(ContractRevert) as exc:  # its proof is against round 1's root
        ledger.commit(sign(node, nonce=2), node)
    assert_revert(exc, "LedgerReputationNotProven", node=node.address, proven=first, latest=second)
    ledger.prove_reputations([(node.address, 960, t2.proof(node.address))], rando)
    ledger.commit(sign(node, nonce=2), node)
    assert ledger.round_info(third).commit_count == 1
    assert ledger.reputation_of(node.address) == 960
