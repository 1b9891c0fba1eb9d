"""Validators: recompute a proposal from chain and IPFS data alone, then vote on it.

``review`` is a top-level function of a picklable job, so each validator's recomputation runs
in its own worker process, with its own chain connection and store handle, sharing nothing
with the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from chainml.aggregate.strategies import strategy_for_rule
from chainml.chain.client import Ledger
from chainml.chain.types import cid_from_struct
from chainml.errors import ChainMLError
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import shared_store
from chainml.swarm.evidence import gather_round
from chainml.swarm.recompute import compute_aggregate


@dataclass(frozen=True)
class ReviewJob:
    validator: str
    proposal_id: int
    rpc_url: str
    ledger_address: str
    voting_address: str
    store_spec: str
    data_dir: str
    from_block: int = 0


@dataclass(frozen=True)
class Review:
    validator: str
    proposal_id: int
    approve: bool
    reason: str


@cache
def _ledger(rpc_url: str, ledger_address: str, voting_address: str) -> Ledger:
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    return Ledger(w3, ledger_address, voting_address)


def review(job: ReviewJob) -> Review:
    """Approve only if the recomputed aggregate and node lists match the proposal exactly."""
    ledger = _ledger(job.rpc_url, job.ledger_address, job.voting_address)
    store = shared_store(job.store_spec, job.data_dir)
    proposal = ledger.proposal(job.proposal_id)
    try:
        evidence = gather_round(ledger, store, int(proposal["round"]), job.from_block)
        outcome = compute_aggregate(evidence, store, strategy_for_rule(int(proposal["ruleId"])))
    except ChainMLError as exc:
        return Review(job.validator, job.proposal_id, False, f"cannot recompute: {exc}")
    proposed = onchain_to_str(*cid_from_struct(proposal["aggregate"]))
    checks = {
        "aggregate CID": (outcome.weights_cid, proposed),
        "included root": (outcome.included_root, bytes(proposal["includedRoot"])),
        "excluded root": (outcome.excluded_root, bytes(proposal["excludedRoot"])),
        "included count": (len(outcome.included), int(proposal["includedCount"])),
        "excluded count": (len(outcome.excluded), int(proposal["excludedCount"])),
    }
    for name, (mine, theirs) in checks.items():
        if mine != theirs:
            return Review(
                job.validator, job.proposal_id, False, f"{name} differs: {mine!r} vs {theirs!r}"
            )
    return Review(job.validator, job.proposal_id, True, f"aggregate {proposed} reproduced")


def vote_salt(validator: str, proposal_id: int, secret: bytes) -> bytes:
    """The commit-reveal salt: unguessable without the validator's secret, stable on resume."""
    return keccak(
        secret + bytes.fromhex(to_checksum_address(validator)[2:]) + proposal_id.to_bytes(32, "big")
    )
