"""Fixtures for the contract tests: one deployment per session, a chain snapshot per test.

The chain itself (``chain``, ``w3``) comes from tests/conftest.py. Accounts are named after
roles; nodes are fresh local keys made by ``make_node``; ``sign`` builds and signs a
commitment; ``submit`` sends signed commitments through the mode under test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from chainml.chain.client import Ledger, PostedBatch
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.deployments import Deployments
from chainml.chain.eip712 import Commitment, SignedCommitment, to_fixed
from chainml.chain.errors import ContractRevert
from chainml.chain.types import CODEC_RAW, SecurityParams
from chainml.protocol.settlement import ReputationTable, registered_before, rules_of

N_VALIDATORS = 3
FAST_ROUND = SecurityParams(
    commit_period=3_600, min_commitments=1, quorum_bps=6_600, challenge_window=60,
    vote_commit_period=600, reveal_period=600,
)  # fmt: skip
TIMELOCK_S = 2 * 24 * 3_600


def cid(tag: str | bytes, codec: int = CODEC_RAW) -> tuple[bytes, int]:
    """A deterministic on-chain CID for test content."""
    return (keccak(tag.encode() if isinstance(tag, str) else tag), codec)


@pytest.fixture(scope="session")
def accounts(w3: Web3) -> list[str]:
    return list(w3.eth.accounts)


@pytest.fixture(scope="session")
def admin(accounts: list[str]) -> str:
    return accounts[0]


@pytest.fixture(scope="session")
def aggregator(accounts: list[str]) -> str:
    return accounts[1]


@pytest.fixture(scope="session")
def validators(accounts: list[str]) -> list[str]:
    return accounts[2 : 2 + N_VALIDATORS]


@pytest.fixture(scope="session")
def gateway(accounts: list[str]) -> str:
    return accounts[6]


@pytest.fixture(scope="session")
def rando(accounts: list[str]) -> str:
    return accounts[7]


@pytest.fixture(scope="session")
def deployments(
    w3: Web3, admin: str, aggregator: str, validators: list[str], gateway: str
) -> Deployments:
    dep = deploy(
        w3,
        admin,
        DeployParams(aggregators=(aggregator,), validators=tuple(validators), security=FAST_ROUND),
    )
    ledger = Ledger.from_deployments(w3, dep)
    ledger.deposit_bond(FAST_ROUND.gateway_bond * 3, gateway)
    return dep


@pytest.fixture(scope="session")
def session_ledger(w3: Web3, deployments: Deployments) -> Ledger:
    return Ledger.from_deployments(w3, deployments)


@pytest.fixture
def ledger(w3: Web3, session_ledger: Ledger) -> Iterator[Ledger]:
    """The deployed ledger, with the chain reverted to a snapshot after the test."""
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield session_ledger
    finally:
        w3.provider.make_request("evm_revert", [snapshot])
        session_ledger.tx.resync()


_key_counter = itertools.count(1)


@pytest.fixture
def make_node(w3: Web3, ledger: Ledger, admin: str) -> Callable[..., LocalAccount]:
    """Make a node key; by default registered (behind ``gateway``) and funded for gas."""

    def make(
        *, register: bool = True, gateway: str | None = None, fund: bool = True
    ) -> LocalAccount:
        account = Account.from_key(keccak(b"chainml-test-node-%d" % next(_key_counter)))
        if register:
            ledger.register_node(
                account.address, cid(f"profile-{account.address}"), admin, gateway=gateway
            )
        if fund:
            tx = {"from": admin, "to": account.address, "value": 10**18}
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))  # type: ignore[arg-type]
            ledger.tx.resync(admin)
        return account

    return make


def set_params(w3: Web3, ledger: Ledger, admin: str, **overrides: Any) -> SecurityParams:
    """Change security parameters the only way there is: the admin queues, the timelock
    passes, anyone applies."""
    params = SecurityParams(**{**ledger.security_params().__dict__, **overrides})
    ledger.queue_security_params(params, admin)
    time_travel(w3, TIMELOCK_S + 1)
    ledger.apply_security_params(admin)
    return params


@pytest.fixture
def open_round(w3: Web3, ledger: Ledger, aggregator: str, admin: str) -> Callable[..., int]:
    """Open a round; overrides change the ledger's security parameters first (timelock)."""

    def opener(**overrides: Any) -> int:
        wanted = SecurityParams(**{**FAST_ROUND.__dict__, **overrides})
        if ledger.security_params() != wanted:
            set_params(w3, ledger, admin, **wanted.__dict__)
        return ledger.open_round(aggregator)

    return opener


@pytest.fixture
def sign(ledger: Ledger) -> Callable[..., SignedCommitment]:
    """Sign a commitment for ``node``; defaults: current round, current version, nonce 0."""

    def signer(node: LocalAccount, *, key: LocalAccount | None = None, **fields: Any):
        c = Commitment(
            round=fields.pop("round", ledger.current_round()),
            node=fields.pop("node_address", node.address),
            base_version=fields.pop("base_version", ledger.current_version()),
            update_digest=fields.pop("update_digest", keccak(b"update-" + node.address.encode())),
            update_codec=fields.pop("update_codec", CODEC_RAW),
            num_samples=fields.pop("num_samples", 10),
            loss_before=fields.pop("loss_before", to_fixed(1.5)),
            loss_after=fields.pop("loss_after", to_fixed(0.5)),
            nonce=fields.pop("nonce", 0),
        )
        assert not fields, f"unknown fields {fields}"
        return ledger.sign(key or node, c)

    return signer


MODES = ("direct", "relayed", "batched")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=("direct", "relayed"))
def strict_mode(request: pytest.FixtureRequest) -> str:
    """Modes that verify each commitment in the submitting transaction."""
    return request.param


@pytest.fixture
def submit(ledger: Ledger, gateway: str) -> Callable[..., Any]:
    """Send signed commitments through ``mode``; returns receipts or the posted batch."""

    def send(
        mode: str, signed: Sequence[SignedCommitment], senders: Sequence[LocalAccount] = ()
    ) -> list[Any] | PostedBatch:
        if mode == "direct":
            by_address = {s.address: s for s in senders}
            return [ledger.commit(s, by_address[s.commitment.node]) for s in signed]
        round_id = signed[0].commitment.round
        if mode == "relayed":
            base = signed[0].commitment.base_version
            return [ledger.commit_relayed(round_id, base, signed, gateway)]
        return ledger.post_batch(round_id, signed, cid(b"leaves"), gateway)

    return send


def next_table(
    ledger: Ledger,
    round_id: int,
    included: Sequence[str],
    excluded: Sequence[str] = (),
    prior: ReputationTable | None = None,
) -> ReputationTable:
    """Round ``round_id``'s reputation table as the product builds it (registered nodes from
    the chain's events), on ``prior`` (default: the genesis table)."""
    prior = prior or ReputationTable.genesis(rules_of(ledger).initial)
    registered = registered_before(ledger, round_id)
    return prior.next(round_id, registered, included, excluded, rules_of(ledger))


def table_fields(table: ReputationTable, gated: int = 0) -> dict[str, Any]:
    """The Proposal fields naming ``table`` (its CID as if stored)."""
    from chainml.storage.cid import str_to_onchain

    return {
        "parent_reputation_root": table.parent_root,
        "reputation_root": table.root,
        "reputation_table": str_to_onchain(table.cid),
        "gated_count": gated,
    }


def assert_revert(exc: pytest.ExceptionInfo[ContractRevert], name: str, **args: Any) -> None:
    """The revert is the named custom error, with the given argument values."""
    assert exc.value.name == name, str(exc.value)
    for key, value in args.items():
        assert exc.value.args_map[key] == value, (key, exc.value.args_map)


def time_travel(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])
