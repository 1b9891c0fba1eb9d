"""The gateway: gets signed commitments onto the ledger in one of three ways.

- **direct:** every node sends its own transaction (small fleets; nodes need gas money);
- **relayed:** the gateway sends chunks of signed commitments, each verified on chain;
- **batched:** the gateway puts the signed leaves on IPFS and posts only their Merkle root.

Submission is idempotent, so a resumed round re-submits only what is not on chain yet: callers
pass only commitments of nodes that have not committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.eip712 import SignedCommitment
from chainml.storage.cid import cid_to_onchain
from chainml.storage.store import Store
from chainml.swarm.payloads import encode_leaves

DIRECT_COMMIT_GAS = 150_000
DIRECT_CHUNK = 200
NODE_FUNDING_WEI = Web3.to_wei(1, "ether")


@dataclass(frozen=True)
class Submission:
    transactions: int
    commitments: int


class Gateway:
    def __init__(self, ledger: Ledger, store: Store, account: str, mode: str) -> None:
        self.ledger = ledger
        self.store = store
        self.account = account
        self.mode = mode

    def submit(
        self,
        round_id: int,
        base_version: int,
        signed: Sequence[SignedCommitment],
        keys: dict[str, bytes],
        chunk: int,
    ) -> Submission:
        """Put ``signed`` on chain in this gateway's mode, in chunks of ``chunk``."""
        if not signed:
            return Submission(0, 0)
        if self.mode == "direct":
            return self._direct(signed, keys)
        chunks = [signed[i : i + chunk] for i in range(0, len(signed), chunk)]
        for part in chunks:
            if self.mode == "relayed":
                self.ledger.commit_relayed(round_id, base_version, part, self.account)
            else:
                leaves_cid = self.store.put(encode_leaves(round_id, part))
                self.ledger.post_batch(round_id, part, cid_to_onchain(leaves_cid), self.account)
        return Submission(len(chunks), len(signed))

    def _direct(self, signed: Sequence[SignedCommitment], keys: dict[str, bytes]) -> Submission:
        accounts: list[LocalAccount] = [
            Account.from_key(keys[s.commitment.node.lower()]) for s in signed
        ]
        fund_accounts(self.ledger.w3, self.account, [a.address for a in accounts])
        self.ledger.tx.resync(self.account)  # funding used the gateway's nonces
        sent = 0
        for start in range(0, len(signed), DIRECT_CHUNK):
            calls = [
                (self.ledger.commit_fn(s), a)
                for s, a in zip(
                    signed[start : start + DIRECT_CHUNK],
                    accounts[start : start + DIRECT_CHUNK],
                    strict=True,
                )
            ]
            self.ledger.tx.send_many(calls, gas=DIRECT_COMMIT_GAS, action="direct commit")
            sent += len(calls)
        return Submission(sent, sent)


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
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.02)
    return len(poor)
