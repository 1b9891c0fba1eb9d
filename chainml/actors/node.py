"""The node client: what a device integration calls to take part in a round.

A device (or the gateway-side service that speaks for it over BLE or LoRa) holds one key. Per
round it asks the chain for the open round and the version it builds on, fetches that version
by CID (the store verifies the bytes), computes its update with the recipe the version itself
carries, stores the update on IPFS and signs the EIP-712 commitment with its own key. It then
either hands the signed commitment to a gateway (:meth:`NodeClient.deliver`) or sends it in its
own transaction (:meth:`NodeClient.commit_direct`). Nothing here needs a port or a daemon.

The swarm's simulated devices run the same steps in worker processes
(``chainml.swarm.node_job.run_node``), batched for speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from web3 import Web3

from chainml.actors.inbox import Inbox
from chainml.chain.client import Ledger, Sender, wait_receipt
from chainml.chain.eip712 import Commitment, SignedCommitment, sign_commitment, to_fixed
from chainml.chain.types import RoundStatus
from chainml.errors import ChainMLError
from chainml.storage.cid import cid_to_onchain, onchain_to_str
from chainml.storage.store import Store

if TYPE_CHECKING:
    from chainml.meta.federated import NodeResult
    from chainml.meta.sparse import SparseUpdate
    from chainml.meta.tasks import Task
    from chainml.protocol.payloads import VersionFile

DIRECT_COMMIT_GAS = 150_000
DIRECT_CHUNK = 200
NODE_FUNDING_WEI = Web3.to_wei(1, "ether")


@dataclass(frozen=True)
class RoundTicket:
    """An open round as a node sees it: what to build on and until when."""

    round: int
    base_version: int
    weights_cid: str
    commit_deadline: int


class NodeClient:
    """One device's key, and the chain and store it reads."""

    def __init__(self, ledger: Ledger, store: Store, account: LocalAccount) -> None:
        self.ledger = ledger
        self.store = store
        self.account = account

    @property
    def address(self) -> str:
        return self.account.address

    def open_round(self) -> RoundTicket | None:
        """The round accepting commitments now, or None."""
        round_id = self.ledger.current_round()
        if round_id == 0:
            return None
        info = self.ledger.round_info(round_id)
        now = int(self.ledger.w3.eth.get_block("latest")["timestamp"])
        if info.status != RoundStatus.OPEN or now > info.commit_deadline:
            return None
        base = info.base_version
        weights = onchain_to_str(*self.ledger.version(base).weights)
        return RoundTicket(round_id, base, weights, info.commit_deadline)

    def version(self, ticket: RoundTicket) -> VersionFile:
        """The base version's weights, optimizer state and recipe (verified by CID)."""
        from chainml.protocol.payloads import decode_version

        return decode_version(self.store.get(ticket.weights_cid))

    def train(self, ticket: RoundTicket, task: Task) -> NodeResult:
        """The honest device step on ``task`` (the device's own data), with the recipe the
        base version carries, so the device cannot drift from what validators recompute."""
        from chainml.meta.federated import NodeConfig, node_step
        from chainml.meta.models import get_model

        version = self.version(ticket)
        config = NodeConfig(recipe=version.recipe, round=ticket.round)
        return node_step(get_model(version.arch_id), version.params, task, config)

    def sign_update(
        self,
        ticket: RoundTicket,
        update: SparseUpdate,
        num_samples: int,
        loss_before: float,
        loss_after: float,
    ) -> SignedCommitment:
        """Store the update on IPFS and sign its commitment (the nonce is read from chain)."""
        from chainml.protocol.payloads import encode_update

        cid = self.store.put(encode_update(update))
        digest, codec = cid_to_onchain(cid)
        nonce = self.ledger.node_info(self.address).next_nonce
        commitment = Commitment(
            round=ticket.round,
            node=self.address,
            base_version=ticket.base_version,
            update_digest=digest,
            update_codec=codec,
            num_samples=num_samples,
            loss_before=to_fixed(loss_before),
            loss_after=to_fixed(loss_after),
            nonce=nonce,
        )
        return sign_commitment(self.account, commitment, self.ledger.domain_separator)

    def participate(self, task: Task) -> SignedCommitment:
        """Train on ``task`` for the open round and sign the result (one call per round)."""
        ticket = self.open_round()
        if ticket is None:
            raise ChainMLError("no round is open for commitments; wait for the aggregator")
        result = self.train(ticket, task)
        return self.sign_update(
            ticket,
            result.update,
            result.num_examples,
            result.metrics["loss_before"],
            result.metrics["loss_after"],
        )

    def deliver(self, signed: SignedCommitment, inbox: Inbox) -> None:
        """Hand the signed commitment to a gateway (its inbox directory)."""
        inbox.put(signed)

    def commit_direct(self, signed: SignedCommitment) -> None:
        """Send the commitment in this node's own transaction (it needs gas money)."""
        self.ledger.commit(signed, self.account)

    @staticmethod
    def update_cid(signed: SignedCommitment) -> str:
        c = signed.commitment
        return onchain_to_str(c.update_digest, c.update_codec)


def commit_direct_many(
    ledger: Ledger,
    funder: Sender,
    signed: Sequence[SignedCommitment],
    accounts: Sequence[LocalAccount],
) -> int:
    """Many nodes' own direct commitments over one connection (a simulated fleet): each
    transaction is signed by its node's key; ``funder`` gives nodes gas money first."""
    if not signed:
        return 0
    funder_address = funder if isinstance(funder, str) else funder.address
    fund_accounts(ledger.w3, funder_address, [a.address for a in accounts])
    ledger.tx.resync(funder_address)  # funding used the funder's nonces
    sent = 0
    for start in range(0, len(signed), DIRECT_CHUNK):
        calls = [
            (ledger.commit_fn(s), a)
            for s, a in zip(
                signed[start : start + DIRECT_CHUNK],
                accounts[start : start + DIRECT_CHUNK],
                strict=True,
            )
        ]
        ledger.tx.send_many(calls, gas=DIRECT_COMMIT_GAS, action="direct commit")
        sent += len(calls)
    return sent


def fund_accounts(w3: Web3, funder: str, addresses: Sequence[str]) -> int:
    """Give every address below half the funding amount gas money (one JSON-RPC batch)."""
    with w3.batch_requests() as batch:
        for address in addresses:
            batch.add(w3.eth.get_balance(address))
        balances = batch.execute()
    poor = [a for a, b in zip(addresses, balances, strict=True) if b < NODE_FUNDING_WEI // 2]
    hashes = [
        w3.eth.send_transaction({"from": funder, "to": a, "value": NODE_FUNDING_WEI}) for a in poor
    ]
    for tx_hash in hashes:
        wait_receipt(w3, tx_hash, timeout=60)
    return len(poor)
