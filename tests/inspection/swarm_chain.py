"""Populate a chain the way a swarm does: register a fleet, run rounds in every commit mode.

Three rounds through real transactions with the Ledger client:
  1. relayed (gateway nodes) + direct commits; one adversary excluded; 2 of 3 validators
     approve; finalized as v1; reputation settled;
  2. batched (gateway nodes) + direct commits; the first proposal is voted down (rejected,
     proposer penalised), a second one is accepted as v2; reputation settled;
  3. one direct commit, then the aggregator closes the round without a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.deployments import Deployments, save_deployments
from chainml.chain.eip712 import Commitment, SignedCommitment, to_fixed
from chainml.chain.merkle import MerkleTree, address_leaf
from chainml.chain.types import CODEC_RAW, OnchainCid, Proposal, SecurityParams
from chainml.protocol.payloads import encode_leaves, encode_node_list
from chainml.protocol.settlement import ReputationRules, ReputationTable, settle_round
from chainml.storage.cid import cid_to_onchain
from chainml.storage.store import Store, open_store

PARAMS = SecurityParams(
    commit_period=3_600, min_commitments=1, quorum_bps=6_600, challenge_window=60,
    vote_commit_period=600, reveal_period=600,
)  # fmt: skip
N_GATEWAY_NODES = 4
Loss = tuple[float, float]
N_DIRECT_NODES = 2


def cid(tag: str) -> OnchainCid:
    return (keccak(tag.encode()), CODEC_RAW)


@dataclass
class SwarmChain:
    """What the populated chain holds, for assertions."""

    url: str
    deployments: Deployments
    deployments_file: Path
    admin: str
    aggregator: str
    validators: list[str]
    gateway: str
    nodes: list[LocalAccount]
    adversary: LocalAccount
    ipfs_url: str = ""
    losses: dict[tuple[int, str], Loss] = field(default_factory=dict)
    aggregates: dict[int, OnchainCid] = field(default_factory=dict)

    @property
    def honest(self) -> list[LocalAccount]:
        return [n for n in self.nodes if n.address != self.adversary.address]


class _Swarm:
    def __init__(self, w3: Web3, out: SwarmChain, store: Store) -> None:
        self.w3, self.s, self.store = w3, out, store
        self.ledger = Ledger.from_deployments(w3, out.deployments)
        self.nonces: dict[str, int] = {}
        self.table = ReputationTable.genesis(ReputationRules().initial)

    def sign(self, node: LocalAccount, round_id: int, loss: Loss) -> SignedCommitment:
        nonce = self.nonces.get(node.address, 0)
        self.nonces[node.address] = nonce + 1
        self.s.losses[(round_id, node.address)] = loss
        c = Commitment(
            round=round_id, node=node.address, base_version=self.ledger.current_version(),
            update_digest=keccak(f"update-{round_id}-{node.address}".encode()),
            update_codec=CODEC_RAW, num_samples=10, loss_before=to_fixed(loss[0]),
            loss_after=to_fixed(loss[1]), nonce=nonce,
        )  # fmt: skip
        return self.ledger.sign(node, c)

    def loss(self, node: LocalAccount, round_id: int) -> Loss:
        bad = node.address == self.s.adversary.address
        return (2.0 + round_id, 9.0) if bad else (1.5, 0.5 / round_id)

    def commit(self, round_id: int, mode: str) -> None:
        gw_nodes = self.s.nodes[:N_GATEWAY_NODES]
        signed = [self.sign(n, round_id, self.loss(n, round_id)) for n in gw_nodes]
        if mode == "relayed":
            base = self.ledger.current_version()
            self.ledger.commit_relayed(round_id, base, signed, self.s.gateway)
        else:  # the leaves file goes to IPFS, as a gateway puts it there
            leaves = cid_to_onchain(self.store.put(encode_leaves(round_id, signed)))
            self.ledger.post_batch(round_id, signed, leaves, self.s.gateway)
        for n in self.s.nodes[N_GATEWAY_NODES:]:
            self.ledger.commit(self.sign(n, round_id, self.loss(n, round_id)), n)

    def propose(self, round_id: int, tag: str) -> tuple[int, ReputationTable]:
        inc = MerkleTree([address_leaf(n.address) for n in self.s.honest])
        exc = MerkleTree([address_leaf(self.s.adversary.address)])
        # The reputation table the round leads to (the ledger keeps only its root).
        table = self.table.next(
            round_id, [n.address for n in self.s.nodes], [n.address for n in self.s.honest],
            [self.s.adversary.address], ReputationRules(),
        )  # fmt: skip
        # The voted lists and the table go to IPFS, as the aggregator puts them there.
        put = self.store.put
        included = [n.address for n in self.s.honest]
        proposal = Proposal(
            round=round_id, aggregate=cid(f"aggregate-{tag}"), metrics=cid(f"metrics-{tag}"),
            included_root=inc.root, included_count=len(self.s.honest),
            included_list=cid_to_onchain(put(encode_node_list(round_id, "included", included))),
            excluded_root=exc.root, excluded_count=1,
            excluded_list=cid_to_onchain(
                put(encode_node_list(round_id, "excluded", [self.s.adversary.address]))
            ),
            rule_id=2, parent_reputation_root=self.table.root, reputation_root=table.root,
            reputation_table=cid_to_onchain(put(table.encode())),
            gated_count=len(table.newly_gated(self.table)),
        )  # fmt: skip
        return self.ledger.propose(proposal, self.s.aggregator), table

    def vote(self, pid: int, approvals: list[bool]) -> None:
        salts = [keccak(f"salt-{pid}-{v}".encode()) for v in self.s.validators]
        for v, ok, salt in zip(self.s.validators, approvals, salts, strict=True):
            self.ledger.commit_vote(pid, ok, salt, v)
        for v, ok, salt in zip(self.s.validators, approvals, salts, strict=True):
            self.ledger.reveal_vote(pid, ok, salt, v)

    def settle(self, round_id: int, table: ReputationTable) -> None:
        """Settle as the aggregator does (``chainml.protocol.settlement``): prove the scores the
        round put below the initial one (the adversary's) against the recorded root."""
        self.table = table
        settle_round(self.ledger, self.store, round_id, self.s.admin)

    def run(self) -> None:
        s, ledger = self.s, self.ledger
        gw, direct = s.nodes[:N_GATEWAY_NODES], s.nodes[N_GATEWAY_NODES:]
        ledger.register_nodes([n.address for n in gw], [cid(f"profile-{n.address}") for n in gw],
                              s.admin, gateway=s.gateway)  # fmt: skip
        for n in direct:
            ledger.register_node(n.address, cid(f"profile-{n.address}"), s.admin)
            tx = {"from": s.admin, "to": n.address, "value": 10**18}
            self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
            ledger.tx.resync(s.admin)  # that transfer used the admin's next nonce

        r1 = ledger.open_round(s.aggregator)
        self.commit(r1, "relayed")
        ledger.close_commit_phase(r1, s.aggregator)
        pid, table = self.propose(r1, "r1")
        self.vote(pid, [True, True, False])
        ledger.finalize(pid, s.admin)
        s.aggregates[1] = cid("aggregate-r1")
        self.settle(r1, table)

        r2 = ledger.open_round(s.aggregator)
        self.commit(r2, "batched")
        ledger.close_commit_phase(r2, s.aggregator)
        self.w3.provider.make_request("evm_increaseTime", [PARAMS.challenge_window])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        pid, _ = self.propose(r2, "r2-bad")
        self.vote(pid, [False, False, False])
        ledger.reject(pid, s.admin)
        pid, table = self.propose(r2, "r2")
        self.vote(pid, [True, True, True])
        ledger.finalize(pid, s.admin)
        s.aggregates[2] = cid("aggregate-r2")
        self.settle(r2, table)

        r3 = ledger.open_round(s.aggregator)
        ledger.commit(self.sign(direct[0], r3, (1.0, 0.25)), direct[0])
        ledger.close_commit_phase(r3, s.aggregator)
        ledger.close_round(r3, s.aggregator)


def populate(w3: Web3, url: str, directory: Path, ipfs_url: str) -> SwarmChain:
    """Deploy fresh contracts on ``w3`` and run the three rounds; save the deployments file.
    Batch leaves, voted lists and reputation tables go to the IPFS node at ``ipfs_url``."""
    accounts = list(w3.eth.accounts)
    admin, aggregator, validators, gateway = accounts[0], accounts[1], accounts[2:5], accounts[6]
    deployments = deploy(
        w3,
        admin,
        DeployParams(aggregators=(aggregator,), validators=tuple(validators), security=PARAMS),
    )
    Ledger.from_deployments(w3, deployments).deposit_bond(PARAMS.gateway_bond, gateway)
    path = directory / "deployments.json"
    save_deployments(path, deployments)
    nodes = [
        Account.from_key(keccak(f"chainml-inspect-node-{i}".encode()))
        for i in range(N_GATEWAY_NODES + N_DIRECT_NODES)
    ]
    out = SwarmChain(
        url=url, deployments=deployments, deployments_file=path, admin=admin,
        aggregator=aggregator, validators=validators, gateway=gateway, nodes=nodes,
        adversary=nodes[-1], ipfs_url=ipfs_url,
    )  # fmt: skip
    _Swarm(w3, out, open_store(ipfs_url, directory)).run()
    return out
