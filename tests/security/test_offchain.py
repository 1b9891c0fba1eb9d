"""Issue 12's off-chain findings, against a real Anvil and the real contracts. Each test first
shows the attack working on the wave-1 code (loaded from the wave-1 commit), then failing now.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from chainml.aggregate.strategies import STRATEGIES
from chainml.chain.types import Proposal
from chainml.errors import ChainMLError
from chainml.protocol.evidence import gather_round
from chainml.protocol.payloads import encode_leaves
from chainml.protocol.review import ReviewJob, ValidatorSecret, review, vote_salt
from chainml.storage.cid import cid_to_onchain, onchain_to_str
from chainml.storage.embedded import EmbeddedStore
from chainml.swarm.challenger import Challenger
from tests.contracts.conftest import FAST_ROUND, cid, time_travel
from tests.security.wave1 import Wave1Ledger, wave1_module


@pytest.fixture
def store(tmp_path: Path):
    s = EmbeddedStore(tmp_path / "ipfs")
    yield s
    s.close()


def _post(ledger, store, round_id, signed, gateway):
    leaves = store.put(encode_leaves(round_id, signed))
    return ledger.post_batch(round_id, signed, cid_to_onchain(leaves), gateway)


def test_h4_replayed_old_leaf_does_not_exclude_the_absent_node(
    w3, ledger, store, make_node, sign, open_round, gateway, aggregator
) -> None:
    absent, present = make_node(gateway=gateway), make_node(gateway=gateway)
    first = open_round()
    old_leaf = sign(absent)  # the absent node's honest leaf of round 1
    _post(ledger, store, first, [old_leaf], gateway)
    ledger.close_commit_phase(first, aggregator)
    time_travel(w3, FAST_ROUND.challenge_window)
    ledger.close_round(first, aggregator)
    second = open_round()
    _post(ledger, store, second, [old_leaf, sign(present, nonce=1)], gateway)  # replay

    wave1 = wave1_module("chainml/swarm/evidence.py", "wave1_evidence").gather_round
    before = {r.node: r for r in wave1(Wave1Ledger.of(ledger), store, second).rejected}
    assert before[absent.address].attributable  # wave 1: counted against the absent node
    now = gather_round(ledger, store, second)
    assert [u.node for u in now.updates] == [present.address]
    (rejected,) = now.rejected
    assert rejected.node == absent.address and not rejected.attributable


def test_h3_deactivated_node_is_not_counted_through_a_batch(
    ledger, store, make_node, sign, open_round, gateway, admin
) -> None:
    node = make_node(gateway=gateway)
    round_id = open_round()
    ledger.deactivate_node(node.address, admin)
    _post(ledger, store, round_id, [sign(node)], gateway)
    wave1 = wave1_module("chainml/swarm/evidence.py", "wave1_evidence").gather_round
    before = wave1(Wave1Ledger.of(ledger), store, round_id)
    assert [u.node for u in before.updates] == [node.address]
    evidence = gather_round(ledger, store, round_id)
    assert evidence.updates == ()
    assert "deactivated" in evidence.rejected[0].reason


def test_h3_challenger_voids_invalid_leaves_slashes_and_is_paid(
    w3, ledger, store, make_node, sign, open_round, gateway, rando
) -> None:
    good, victim = make_node(gateway=gateway), make_node(gateway=gateway)
    round_id = open_round()
    forged = sign(victim, key=Account.create())
    _post(ledger, store, round_id, [sign(good), forged], gateway)
    assert ledger.round_info(round_id).commit_count == 2  # optimistic: both count for now
    bond, _ = ledger.bond_of(gateway)

    voided = Challenger(ledger, store, rando).scan(round_id)
    assert [(c.node, c.index) for c in voided] == [(victim.address, 1)]
    assert ledger.round_info(round_id).commit_count == 1
    assert Challenger(ledger, store, rando).scan(round_id) == []  # idempotent
    slashed = FAST_ROUND.gateway_bond
    assert ledger.bond_of(gateway)[0] == bond - slashed
    reward = slashed * FAST_ROUND.challenger_reward_bps // 10_000
    assert ledger.reward_of(rando) == reward
    balance = w3.eth.get_balance(rando)
    receipt = ledger.withdraw_reward(rando)
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(rando) == balance + reward - fee
    assert [u.node for u in gather_round(ledger, store, round_id).updates] == [good.address]


def test_without_a_challenger_the_forged_leaf_stays_counted(
    w3, ledger, store, make_node, sign, open_round, gateway, aggregator
) -> None:
    """The undefended run: nobody challenges, the window closes, the count keeps the forgery."""
    good, victim = make_node(gateway=gateway), make_node(gateway=gateway)
    round_id = open_round()
    _post(ledger, store, round_id, [sign(good), sign(victim, key=Account.create())], gateway)
    time_travel(w3, FAST_ROUND.challenge_window)
    assert Challenger(ledger, store, aggregator).scan(round_id) == []  # too late
    assert ledger.round_info(round_id).commit_count == 2


def test_vote_salts_are_not_derivable_from_the_run_seed(ledger, tmp_path: Path) -> None:
    """Wave 1 salted every vote with the public run seed: anyone could decode all votes."""
    validator, proposal_id, approve = "0x" + "ab" * 20, 7, False
    public = (0).to_bytes(8, "big") + b"chainml-validator"  # run seed 0, as wave 1 did
    wave1 = wave1_module("chainml/swarm/validator.py", "wave1_validator")

    def decode(commitment: bytes) -> bool | None:
        for guess in (True, False):
            salt = wave1.vote_salt(validator, proposal_id, public)
            if ledger.vote_hash(proposal_id, validator, guess, salt) == commitment:
                return guess
        return None

    old_salt = wave1.vote_salt(validator, proposal_id, public)
    assert decode(ledger.vote_hash(proposal_id, validator, approve, old_salt)) is approve
    secret = ValidatorSecret(tmp_path, validator)
    salt = secret.salt(proposal_id)
    assert decode(ledger.vote_hash(proposal_id, validator, approve, salt)) is None
    assert ValidatorSecret(tmp_path, validator).salt(proposal_id) == salt  # stable on resume
    assert salt != vote_salt(validator, proposal_id, public)
    assert (secret.path.stat().st_mode & 0o777) == 0o600


def test_validators_refuse_to_vote_while_leaves_are_unavailable(
    w3,
    ledger,
    store,
    make_node,
    sign,
    open_round,
    gateway,
    aggregator,
    validators,
    deployments,
    tmp_path: Path,
) -> None:
    node = make_node(gateway=gateway)
    round_id = open_round()
    missing = (keccak(b"never stored"), 0x55)  # the gateway withholds its leaves file
    ledger.post_batch(round_id, [sign(node)], missing, gateway)
    ledger.close_commit_phase(round_id, aggregator)
    time_travel(w3, FAST_ROUND.challenge_window)
    pid = ledger.propose(
        Proposal(round=round_id, aggregate=cid("agg"), included_root=b"\1" * 32,
                 included_count=1, rule_id=STRATEGIES["guard"].rule_id),
        aggregator,
    )  # fmt: skip
    job = ReviewJob(
        validator=validators[0], proposal_id=pid, rpc_url=w3.provider.endpoint_uri,
        ledger_address=deployments.address("ChainMLLedger"),
        voting_address=deployments.address("ChainMLVoting"), store_spec="embedded",
        data_dir=str(tmp_path / "validator"),
    )  # fmt: skip
    wave1 = wave1_module("chainml/swarm/validator.py", "wave1_validator").review(job)
    # Wave 1 had no abstention: whatever it could not fetch or decode (here this fixture's empty
    # genesis, before it even reached the withheld leaves) became a "no" vote, so a gateway
    # withholding its leaves file could get an honest proposal rejected.
    assert not hasattr(wave1, "abstain") and not wave1.approve
    assert wave1.reason.startswith("cannot recompute"), wave1
    verdict = review(job)
    assert verdict.abstain and not verdict.approve
    assert "unavailable" in verdict.reason


def test_record_artifact_provenance(ledger, rando) -> None:
    cid_text = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    ledger.record_artifact(0, cid_text, "cortex-m4-int8", rando)
    (recorded,) = ledger.artifacts(0)
    assert (recorded.version, onchain_to_str(*recorded.cid), recorded.target_name) == (
        0,
        cid_text,
        "cortex-m4-int8",
    )
    assert recorded.recorder == rando
    assert ledger.artifacts(1) == []
    with pytest.raises(ChainMLError, match="LedgerVersionUnknown"):
        ledger.record_artifact(5, cid_text, "cortex-m4-int8", rando)
    with pytest.raises(ChainMLError, match="1-32 bytes"):
        ledger.record_artifact(0, cid_text, "x" * 33, rando)


def test_h3_leaf_of_a_node_behind_another_gateway_is_not_counted(
    ledger, store, make_node, sign, open_round, gateway, rando, admin
) -> None:
    theirs = make_node(gateway=gateway)  # behind `gateway`
    make_node(gateway=rando)  # `rando` is a gateway too, of its own node
    ledger.deposit_bond(FAST_ROUND.gateway_bond, rando)
    round_id = open_round()
    _post(ledger, store, round_id, [sign(theirs)], rando)  # not rando's node
    wave1 = wave1_module("chainml/swarm/evidence.py", "wave1_evidence").gather_round
    before = wave1(Wave1Ledger.of(ledger), store, round_id)
    assert [u.node for u in before.updates] == [theirs.address]
    evidence = gather_round(ledger, store, round_id)
    assert evidence.updates == () and "not behind gateway" in evidence.rejected[0].reason
