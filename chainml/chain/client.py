"""Transactions: a ``Ledger`` (a ``ChainReader`` that also sends) and the ``TxRunner`` under it.

Transactions are signed locally when the sender is a ``LocalAccount`` (simulated nodes, the
swarm's gateway) and sent with ``eth_sendTransaction`` when it is an address the chain
unlocks (Anvil/Ganache dev accounts). Nonces are tracked locally per sender so many
transactions can be sent back to back or in one JSON-RPC batch (``send_many``). Every revert,
from gas estimation or from a mined transaction, becomes a decoded ``ContractRevert``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import TxReceipt

from chainml.chain import eip712
from chainml.chain.eip712 import Commitment, SignedCommitment
from chainml.chain.errors import RevertDecoder, TransactionError, revert_data
from chainml.chain.merkle import MerkleTree, commitment_leaf
from chainml.chain.merkle import verify as merkle_verify
from chainml.chain.reader import ROLES, ChainReader
from chainml.chain.types import OnchainCid, Proposal, SecurityParams, cid_abi
from chainml.errors import ChainMLError, IntegrityError
from chainml.storage.cid import str_to_onchain

Sender = LocalAccount | str
"""Who sends a transaction: a local key, or an address the node unlocks."""

_GAS_MARGIN = 1.25
_PRIORITY_FEE_WEI = 10**9
_GAS_PRICE_TTL = 2.0
RECEIPT_TIMEOUT_S = 120.0
"""How long a sender waits for a transaction to be mined before it gives up."""
MINE_PENDING_AFTER_S = 10.0
"""On a dev chain, how long a transaction may stay pending before the sender mines a block."""
_DEV_CHAINS = ("anvil", "ganache")


def sender_address(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else to_checksum_address(sender)


def wait_receipt(
    w3: Web3,
    tx_hash: Any,
    timeout: float = RECEIPT_TIMEOUT_S,
    mine_after: float | None = MINE_PENDING_AFTER_S,
) -> TxReceipt:
    """The transaction's receipt, once mined (``TimeExhausted`` after ``timeout`` s).

    Anvil's automining can miss a transaction that is ready in its pool (seen once in a full
    fault bench: a gateway's Merkle batch from one JSON-RPC batch waited 120 s and the run died;
    foundry-rs/foundry#10122 reports the same). Such a transaction is mined only with the next
    block, which a sender waiting for it never causes. So on a dev chain (Anvil, Ganache), a
    transaction still pending after ``mine_after`` s gets one block mined (``evm_mine``; an
    empty block if it was mined meanwhile). Real chains just wait.
    """
    wait = w3.eth.wait_for_transaction_receipt
    first = timeout if mine_after is None else min(mine_after, timeout)
    try:
        return wait(tx_hash, timeout=first, poll_latency=0.02)
    except TimeExhausted:
        if mine_after is None or first >= timeout or not is_dev_chain(w3):
            raise
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return wait(tx_hash, timeout=timeout - first, poll_latency=0.02)


def is_dev_chain(w3: Web3) -> bool:
    """Whether the node is a local development chain that mines on request."""
    return str(w3.client_version).lower().startswith(_DEV_CHAINS)


def http_web3(rpc_url: str, timeout: float = 60) -> Web3:
    """A Web3 over HTTP that asks the chain id once: web3 otherwise sends ``eth_chainId`` before
    every call and transaction (the largest fixed cost of a small round); a chain id never
    changes under one URL, and nothing else is cached."""
    return Web3(
        Web3.HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout},
            cache_allowed_requests=True,
            cacheable_requests={"eth_chainId"},
        )
    )


@dataclass(frozen=True)
class PostedBatch:
    """A posted Merkle batch: its id, tree (for proofs) and the signed leaves in tree order."""

    batch_id: int
    tree: MerkleTree
    leaves: list[SignedCommitment]
    receipt: TxReceipt

    def proof(self, index: int) -> list[bytes]:
        return self.tree.proof(index)


class TxRunner:
    """Sends contract transactions with local nonces and decodes reverts."""

    def __init__(self, w3: Web3, decoder: RevertDecoder) -> None:
        self.w3 = w3
        self.decoder = decoder
        self.chain_id = w3.eth.chain_id
        self._nonces: dict[str, int] = {}
        self._gas_price = 0
        self._gas_price_at = 0.0

    def gas_price(self) -> int:
        """Twice the latest base fee plus a fixed 1 gwei tip. Not ``2 * eth_gasPrice``: that
        suggestion includes recent tips, so paying twice it doubled the tip on every refresh
        and a long run ended at ~1 ETH per gas, unable to pay for anything. Never below the
        node's own suggestion (Ganache's fixed minimum)."""
        now = time.monotonic()
        if now - self._gas_price_at > _GAS_PRICE_TTL:
            base = int(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
            self._gas_price = max(2 * base + _PRIORITY_FEE_WEI, int(self.w3.eth.gas_price))
            self._gas_price_at = now
        return self._gas_price

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(address, "pending")
        return self._nonces[address]

    def resync(self, address: str | None = None) -> None:
        """Forget cached nonces (after a chain revert or an external sender)."""
        if address is None:
            self._nonces.clear()
        else:
            self._nonces.pop(address, None)
        self._gas_price_at = 0.0

    def estimate(self, fn: ContractFunction, sender: Sender, action: str, value: int = 0) -> int:
        try:
            return fn.estimate_gas({"from": sender_address(sender), "value": value})
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is None:
                raise TransactionError(f"{action} failed: {exc}") from exc
            raise self.decoder.error(action, data) from exc

    def build(
        self, fn: ContractFunction, sender: Sender, gas: int, value: int = 0
    ) -> dict[str, Any]:
        address = sender_address(sender)
        return fn.build_transaction(
            {
                "from": address,
                "value": value,
                "nonce": self._next_nonce(address),
                "gas": gas,
                "gasPrice": self.gas_price(),
                "chainId": self.chain_id,
            }
        )

    def _broadcast(self, tx: dict[str, Any], sender: Sender) -> bytes:
        if isinstance(sender, LocalAccount):
            return self.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        return self.w3.eth.send_transaction(tx)  # type: ignore[arg-type]

    def send(
        self,
        fn: ContractFunction,
        sender: Sender,
        *,
        action: str,
        gas: int | None = None,
        value: int = 0,
    ) -> TxReceipt:
        """Estimate (surfacing reverts), send, wait for the receipt and check its status."""
        if gas is None:
            gas = int(self.estimate(fn, sender, action, value) * _GAS_MARGIN) + 10_000
        address = sender_address(sender)
        tx = self.build(fn, sender, gas, value)
        try:
            tx_hash = self._broadcast(tx, sender)
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.decoder.error(action, revert_data(exc) or b"") from exc
        except (Web3RPCError, ValueError) as exc:
            self.resync(address)
            raise TransactionError(f"{action}: sending failed: {exc}") from exc
        self._nonces[address] = tx["nonce"] + 1
        receipt = wait_receipt(self.w3, tx_hash)
        if receipt["status"] != 1:
            raise self._failure(tx, receipt, action)
        return receipt

    def send_many(
        self, calls: Sequence[tuple[ContractFunction, Sender]], *, gas: int, action: str
    ) -> list[TxReceipt]:
        """Send many transactions in one JSON-RPC batch (explicit nonces), then fetch receipts.

        No per-call estimate: ``gas`` is the limit for each. A failed transaction raises the
        decoded revert of the first failure after all receipts are in.
        """
        txs = []
        for fn, s in calls:
            tx = self.build(fn, s, gas)
            self._nonces[tx["from"]] = tx["nonce"] + 1  # a sender's next call takes the next
            txs.append((tx, s))
        raws: list[tuple[bytes | None, dict[str, Any]]] = []
        for tx, s in txs:
            raw = s.sign_transaction(tx).raw_transaction if isinstance(s, LocalAccount) else None
            raws.append((raw, tx))
        # web3's batch API refuses eth_sendRawTransaction, so send the JSON-RPC batch directly.
        requests = [
            ("eth_sendRawTransaction", ["0x" + raw.hex()])
            if raw is not None
            else ("eth_sendTransaction", [_jsonable_tx(tx)])
            for raw, tx in raws
        ]
        responses = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
        if not isinstance(responses, list):
            self.resync()
            raise TransactionError(f"{action}: the batch was refused: {responses}")
        hashes = []
        for response in sorted(responses, key=lambda r: r["id"]):
            if "error" in response:
                self.resync()
                raise TransactionError(f"{action}: sending failed: {response['error']}")
            hashes.append(response["result"])
        receipts = [wait_receipt(self.w3, h) for h in hashes]
        for (_, tx), receipt in zip(raws, receipts, strict=True):
            if receipt["status"] != 1:
                raise self._failure(tx, receipt, action)
        return receipts

    def _failure(self, tx: dict[str, Any], receipt: TxReceipt, action: str) -> Exception:
        """Replay a failed transaction as a call to recover its revert data."""
        call = {k: tx[k] for k in ("from", "to", "data", "gas") if k in tx}
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is not None:
                return self.decoder.error(action, data)
        return TransactionError(
            f"{action}: transaction 0x{receipt['transactionHash'].hex()} failed "
            f"(gas used {receipt['gasUsed']} of {tx.get('gas')})"
        )


class Ledger(ChainReader):
    """A :class:`~chainml.chain.reader.ChainReader` that also sends transactions: typed
    methods for every state change of ChainMLLedger, ChainMLVoting and the ChainMLParams
    contract the ledger created (security parameters, gateway bonds, challenge rewards)."""

    def __init__(self, w3: Web3, ledger_address: str, voting_address: str) -> None:
        super().__init__(w3, ledger_address, voting_address)
        self.tx = TxRunner(w3, decoder=self.decoder)
        self.chain_id = self.tx.chain_id
        self.domain_separator = eip712.domain_separator(self.chain_id, self.ledger.address)

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, fn: ContractFunction, sender: Sender, action: str, gas: int | None = None):
        return self.tx.send(fn, sender, action=action, gas=gas)

    def receipt_events(
        self, contract: Contract, receipt: TxReceipt, name: str
    ) -> list[dict[str, Any]]:
        """Decoded events ``name`` emitted by ``contract`` in ``receipt``."""
        event = getattr(contract.events, name)()
        out = []
        for log in receipt["logs"]:
            if log["address"] != contract.address:
                continue
            try:
                out.append(dict(event.process_log(log)["args"]))
            except Exception:  # another event of the same contract
                continue
        return out

    # -- roles ----------------------------------------------------------------------------

    def grant_role(self, role: str, account: str, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.grantRole(ROLES[role], to_checksum_address(account))
        return self._send(fn, sender, f"grant {role} to {account}")

    def revoke_role(self, role: str, account: str, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.revokeRole(ROLES[role], to_checksum_address(account))
        return self._send(fn, sender, f"revoke {role} from {account}")

    # -- registry -------------------------------------------------------------------------

    def register_node(
        self, node: str, profile: OnchainCid, sender: Sender, gateway: str | None = None
    ) -> TxReceipt:
        fn = self.ledger.functions.registerNode(
            to_checksum_address(node), cid_abi(profile), to_checksum_address(gateway or _ZERO)
        )
        return self._send(fn, sender, f"register node {node}")

    def register_nodes(
        self,
        nodes: Sequence[str],
        profiles: Sequence[OnchainCid],
        sender: Sender,
        gateway: str | None = None,
        chunk: int = 100,
    ) -> list[TxReceipt]:
        """Register many nodes behind one gateway, ``chunk`` per transaction."""
        receipts = []
        for i in range(0, len(nodes), chunk):
            fn = self.ledger.functions.registerNodes(
                [to_checksum_address(n) for n in nodes[i : i + chunk]],
                [cid_abi(p) for p in profiles[i : i + chunk]],
                to_checksum_address(gateway or _ZERO),
            )
            receipts.append(self._send(fn, sender, f"register nodes {i}..{i + chunk}"))
        return receipts

    def deactivate_node(self, node: str, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.deactivateNode(to_checksum_address(node))
        return self._send(fn, sender, f"deactivate node {node}")

    def reactivate_node(self, node: str, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.reactivateNode(to_checksum_address(node))
        return self._send(fn, sender, f"reactivate node {node}")

    def set_node_gateway(self, node: str, gateway: str | None, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.setNodeGateway(
            to_checksum_address(node), to_checksum_address(gateway or _ZERO)
        )
        return self._send(fn, sender, f"set gateway of {node}")

    def approve_gateway(self, gateway: str, approved: bool, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.approveGateway(to_checksum_address(gateway), approved)
        return self._send(fn, sender, f"approve gateway {gateway}")

    def consent_to_node(self, node: str, consent: bool, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.consentToNode(to_checksum_address(node), consent)
        return self._send(fn, sender, f"gateway consent for {node}")

    # -- security parameters, bonds and rewards (the params contract) ----------------------

    def queue_security_params(self, p: SecurityParams, sender: Sender) -> TxReceipt:
        return self._send(self.params.functions.queue(p.as_abi()), sender, "queue parameters")

    def apply_security_params(self, sender: Sender) -> TxReceipt:
        return self._send(self.params.functions.applyQueued(), sender, "apply parameters")

    def cancel_security_params(self, sender: Sender) -> TxReceipt:
        return self._send(self.params.functions.cancel(), sender, "cancel parameters")

    def deposit_bond(self, amount: int, sender: Sender) -> TxReceipt:
        """Add ``amount`` wei to ``sender``'s gateway bond (batches need one bond unit)."""
        fn = self.params.functions.depositBond()
        return self.tx.send(fn, sender, action=f"deposit a bond of {amount} wei", value=amount)

    def withdraw_bond(self, amount: int, sender: Sender) -> TxReceipt:
        return self._send(self.params.functions.withdrawBond(amount), sender, "withdraw bond")

    def withdraw_reward(self, sender: Sender) -> TxReceipt:
        return self._send(self.params.functions.withdrawReward(), sender, "withdraw reward")

    # -- rounds ---------------------------------------------------------------------------

    def open_round(self, sender: Sender, base_version: int | None = None) -> int:
        """Open the next round; its parameters are the ledger's, never the caller's."""
        base = self.current_version() if base_version is None else base_version
        receipt = self._send(self.ledger.functions.openRound(base), sender, "open round")
        return int(self.receipt_events(self.ledger, receipt, "RoundOpened")[0]["round"])

    def close_commit_phase(self, round_id: int, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.closeCommitPhase(round_id)
        return self._send(fn, sender, f"close commit phase of round {round_id}")

    def close_round(self, round_id: int, sender: Sender) -> TxReceipt:
        fn = self.ledger.functions.closeRound(round_id)
        return self._send(fn, sender, f"close round {round_id}")

    # -- commitments ----------------------------------------------------------------------

    def sign(self, account: LocalAccount, commitment: Commitment) -> SignedCommitment:
        return eip712.sign_commitment(account, commitment, self.domain_separator)

    def commit(self, signed: SignedCommitment, sender: Sender, gas: int | None = None) -> TxReceipt:
        """Direct mode: ``sender`` must be the committing node."""
        c = signed.commitment
        fn = self.ledger.functions.commit(c.as_abi(), signed.r, signed.vs)
        return self._send(fn, sender, f"commit for round {c.round} by {c.node}", gas)

    def commit_fn(self, signed: SignedCommitment) -> ContractFunction:
        """The direct-commit call, for ``tx.send_many``."""
        return self.ledger.functions.commit(signed.commitment.as_abi(), signed.r, signed.vs)

    def commit_relayed(
        self, round_id: int, base_version: int, signed: Sequence[SignedCommitment], sender: Sender
    ) -> TxReceipt:
        fn = self.ledger.functions.commitRelayed(
            round_id, base_version, [s.relayed_abi() for s in signed]
        )
        return self._send(fn, sender, f"relay {len(signed)} commitments for round {round_id}")

    @staticmethod
    def batch_tree(signed: Sequence[SignedCommitment]) -> MerkleTree:
        return MerkleTree(
            [commitment_leaf(eip712.struct_hash(s.commitment), s.r, s.vs) for s in signed]
        )

    def post_batch(
        self,
        round_id: int,
        signed: Sequence[SignedCommitment],
        leaves_cid: OnchainCid,
        sender: Sender,
    ) -> PostedBatch:
        """Batched mode: post the Merkle root of ``signed``; the caller stores the leaves on
        IPFS (``leaves_cid``) so validators can rebuild the tree."""
        tree = self.batch_tree(signed)
        fn = self.ledger.functions.postBatch(round_id, tree.root, len(signed), cid_abi(leaves_cid))
        receipt = self._send(fn, sender, f"post batch of {len(signed)} for round {round_id}")
        batch_id = int(self.receipt_events(self.ledger, receipt, "BatchPosted")[0]["batchId"])
        return PostedBatch(batch_id, tree, list(signed), receipt)

    def post_batches(
        self,
        round_id: int,
        batches: Sequence[tuple[Sequence[SignedCommitment], OnchainCid]],
        sender: Sender,
    ) -> list[TxReceipt]:
        """Post several Merkle batches (leaves, leaves CID) in one JSON-RPC batch with explicit
        nonces (a 10,000-node round has 40): each gets the gas the first needs, with margin
        (the first costs the most: it opens the gateway's claim for the round)."""
        calls = [
            (
                self.ledger.functions.postBatch(
                    round_id, self.batch_tree(signed).root, len(signed), cid_abi(cid)
                ),
                sender,
            )
            for signed, cid in batches
        ]
        if not calls:
            return []
        action = f"post {len(calls)} batches for round {round_id}"
        gas = int(self.tx.estimate(calls[0][0], sender, action) * _GAS_MARGIN) + 10_000
        return self.tx.send_many(calls, gas=gas, action=action)

    def prove_leaf(self, batch_id: int, signed: SignedCommitment, proof: Sequence[bytes]) -> bytes:
        """Check off chain that ``signed`` is a live leaf of batch ``batch_id`` (the posted root,
        no ``LeafVoided``), exactly as ``challengeLeaf`` checks inclusion; returns the leaf.
        Raises ``IntegrityError`` otherwise."""
        root = self.batch(batch_id).root
        leaf = commitment_leaf(eip712.struct_hash(signed.commitment), signed.r, signed.vs)
        if not merkle_verify(proof, root, leaf):
            raise IntegrityError(
                f"leaf 0x{leaf.hex()} is not in batch {batch_id}'s tree (root 0x{root.hex()})"
            )
        if any(e.leaf == leaf for e in self.voided_leaves(batch_id)):
            raise IntegrityError(f"leaf 0x{leaf.hex()} of batch {batch_id} was voided")
        return leaf

    def challenge_leaf(
        self, batch_id: int, signed: SignedCommitment, proof: Sequence[bytes], sender: Sender
    ) -> TxReceipt:
        fn = self.ledger.functions.challengeLeaf(
            batch_id, signed.commitment.as_abi(), signed.r, signed.vs, list(proof)
        )
        return self._send(fn, sender, f"challenge leaf of batch {batch_id}")

    # -- voting ---------------------------------------------------------------------------

    def propose(self, proposal: Proposal, sender: Sender) -> int:
        receipt = self._send(
            self.voting.functions.propose(proposal.as_abi()),
            sender,
            f"propose aggregate for round {proposal.round}",
        )
        return int(self.receipt_events(self.voting, receipt, "ProposalSubmitted")[0]["proposalId"])

    def vote_hash(self, proposal_id: int, validator: str, approve: bool, salt: bytes) -> bytes:
        return keccak(
            encode(
                ["uint256", "address", "bool", "bytes32"],
                [proposal_id, to_checksum_address(validator), approve, salt],
            )
        )

    def commit_vote(
        self, proposal_id: int, approve: bool, salt: bytes, sender: Sender
    ) -> TxReceipt:
        commitment = self.vote_hash(proposal_id, _addr(sender), approve, salt)
        fn = self.voting.functions.commitVote(proposal_id, commitment)
        return self._send(fn, sender, f"commit vote on proposal {proposal_id}")

    def reveal_vote(
        self, proposal_id: int, approve: bool, salt: bytes, sender: Sender
    ) -> TxReceipt:
        fn = self.voting.functions.revealVote(proposal_id, approve, salt)
        return self._send(fn, sender, f"reveal vote on proposal {proposal_id}")

    def finalize(self, proposal_id: int, sender: Sender) -> int:
        receipt = self._send(
            self.voting.functions.finalize(proposal_id), sender, f"finalize proposal {proposal_id}"
        )
        return int(self.receipt_events(self.voting, receipt, "ProposalAccepted")[0]["version"])

    def reject(self, proposal_id: int, sender: Sender) -> TxReceipt:
        fn = self.voting.functions.reject(proposal_id)
        return self._send(fn, sender, f"reject proposal {proposal_id}")

    def forfeit_vote(self, proposal_id: int, validator: str, sender: Sender) -> TxReceipt:
        """Penalize a validator that committed a vote and never revealed it."""
        fn = self.voting.functions.forfeitVote(proposal_id, to_checksum_address(validator))
        return self._send(fn, sender, f"forfeit vote of {validator} on proposal {proposal_id}")

    # -- artifact provenance --------------------------------------------------------------

    def record_artifact(self, version: int, cid: str, target: str, sender: Sender) -> None:
        """Record on chain that the artifact ``cid`` (e.g. an MCU export) was built for
        ``target`` from ``version``. Anyone may record; an unknown version reverts."""
        try:
            digest, codec = str_to_onchain(cid)
        except Exception as exc:  # any parse failure is bad input
            raise ChainMLError(f"record artifact: {cid!r} is not a CID ({exc})") from exc
        fn = self.ledger.functions.recordArtifact(version, digest, codec, _target_bytes(target))
        self._send(fn, sender, f"record artifact {cid} of version {version}")

    def prove_reputations(
        self, items: Iterable[tuple[str, int, Sequence[bytes]]], sender: Sender
    ) -> TxReceipt:
        """Prove (node, score, proof) items against the latest reputation root: caches each
        score on chain (a node below the initial score needs that to commit) and settles the
        nodes the latest round put below the initial score."""
        nodes, scores, proofs = [], [], []
        for node, score, proof in items:
            nodes.append(to_checksum_address(node))
            scores.append(int(score))
            proofs.append(list(proof))
        fn = self.ledger.functions.proveReputations(nodes, scores, proofs)
        return self._send(fn, sender, f"prove the reputation of {len(nodes)} nodes")

    def has_committed(self, round_id: int, node: str) -> bool:
        """Whether ``node`` committed directly or relayed in ``round_id`` (its registry slot)."""
        return round_id != 0 and self.node_info(node).last_commit_round == round_id


_ZERO = "0x0000000000000000000000000000000000000000"


def _target_bytes(target: str) -> bytes:
    """A device target name as the bytes32 the ledger stores (UTF-8, zero-padded, reversible)."""
    raw = target.encode("utf-8")
    if not raw or len(raw) > 32 or b"\0" in raw:
        raise ChainMLError(f"an artifact target must be 1-32 bytes of UTF-8 text, got {target!r}")
    return raw.ljust(32, b"\0")


def _jsonable_tx(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction dict as JSON-RPC wants it: integers as hex quantities."""
    return {k: hex(v) if isinstance(v, int) else v for k, v in tx.items()}


def _addr(sender: Sender) -> str:
    return sender_address(sender)
