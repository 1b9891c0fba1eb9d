"""web3 bindings: a ``Ledger`` object with typed methods over both chainml contracts.

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
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.types import TxReceipt

from chainml.chain import eip712
from chainml.chain.compile import compile_contracts
from chainml.chain.deployments import Deployments
from chainml.chain.eip712 import Commitment, SignedCommitment
from chainml.chain.errors import RevertDecoder, TransactionError, revert_data
from chainml.chain.merkle import MerkleTree, commitment_leaf
from chainml.chain.merkle import verify as merkle_verify
from chainml.chain.types import OnchainCid, Proposal, SecurityParams, cid_abi
from chainml.errors import ChainMLError, IntegrityError
from chainml.storage.cid import onchain_to_str, str_to_onchain

Sender = LocalAccount | str
"""Who sends a transaction: a local key, or an address the node unlocks."""

LEDGER = "ChainMLLedger"
VOTING = "ChainMLVoting"
PARAMS = "ChainMLParams"
ROLES = {
    "admin": b"\x00" * 32,
    "aggregator": keccak(text="AGGREGATOR_ROLE"),
    "validator": keccak(text="VALIDATOR_ROLE"),
    "voting": keccak(text="VOTING_ROLE"),
}
_GAS_MARGIN = 1.25
_PRIORITY_FEE_WEI = 10**9
_GAS_PRICE_TTL = 2.0


def sender_address(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else to_checksum_address(sender)


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
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
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
        receipts = [
            self.w3.eth.wait_for_transaction_receipt(h, timeout=120, poll_latency=0.02)
            for h in hashes
        ]
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


class Ledger:
    """Typed access to a deployed ChainMLLedger + ChainMLVoting pair (and the ChainMLParams
    contract the ledger created: security parameters, gateway bonds, challenge rewards)."""

    def __init__(self, w3: Web3, ledger_address: str, voting_address: str) -> None:
        artifacts = compile_contracts()
        self.w3 = w3
        self.ledger: Contract = w3.eth.contract(
            address=to_checksum_address(ledger_address), abi=artifacts[LEDGER].abi
        )
        self.voting: Contract = w3.eth.contract(
            address=to_checksum_address(voting_address), abi=artifacts[VOTING].abi
        )
        self._params_abi = artifacts[PARAMS].abi
        self._params: Contract | None = None
        self.decoder = RevertDecoder(
            [artifacts[LEDGER].abi, artifacts[VOTING].abi, artifacts[PARAMS].abi]
        )
        self.tx = TxRunner(w3, decoder=self.decoder)
        self.chain_id = self.tx.chain_id
        self.domain_separator = eip712.domain_separator(self.chain_id, self.ledger.address)

    @classmethod
    def from_deployments(cls, w3: Web3, deployments: Deployments) -> Ledger:
        return cls(w3, deployments.address(LEDGER), deployments.address(VOTING))

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, fn: ContractFunction, sender: Sender, action: str, gas: int | None = None):
        return self.tx.send(fn, sender, action=action, gas=gas)

    def _call(self, fn: ContractFunction, action: str) -> Any:
        try:
            return fn.call()
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is None:
                raise TransactionError(f"{action} failed: {exc}") from exc
            raise self.decoder.error(action, data) from exc

    def events(self, contract: Contract, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
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

    def has_role(self, role: str, account: str) -> bool:
        return self.ledger.functions.hasRole(ROLES[role], to_checksum_address(account)).call()

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

    @property
    def params(self) -> Contract:
        """The ChainMLParams contract the ledger created (looked up once)."""
        if self._params is None:
            address = self.ledger.functions.params().call()
            self._params = self.w3.eth.contract(address=address, abi=self._params_abi)
        return self._params

    def security_params(self) -> SecurityParams:
        return SecurityParams.from_abi(self.params.functions.current().call())

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

    def bond_of(self, gateway: str) -> tuple[int, int]:
        amount, until = self.params.functions.bondOf(to_checksum_address(gateway)).call()
        return int(amount), int(until)

    def reward_of(self, account: str) -> int:
        return int(self.params.functions.rewardOf(to_checksum_address(account)).call())

    # -- rounds ---------------------------------------------------------------------------

    def open_round(self, sender: Sender, base_version: int | None = None) -> int:
        """Open the next round; its parameters are the ledger's, never the caller's."""
        base = self.current_version() if base_version is None else base_version
        receipt = self._send(self.ledger.functions.openRound(base), sender, "open round")
        return int(self.events(self.ledger, receipt, "RoundOpened")[0]["round"])

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
        batch_id = int(self.events(self.ledger, receipt, "BatchPosted")[0]["batchId"])
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
        root = bytes(self.batch(batch_id)["root"])
        leaf = commitment_leaf(eip712.struct_hash(signed.commitment), signed.r, signed.vs)
        if not merkle_verify(proof, root, leaf):
            raise IntegrityError(
                f"leaf 0x{leaf.hex()} is not in batch {batch_id}'s tree (root 0x{root.hex()})"
            )
        if any(bytes(e["leaf"]) == leaf for e in self.voided_leaves(batch_id)):
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
        return int(self.events(self.voting, receipt, "ProposalSubmitted")[0]["proposalId"])

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
        return int(self.events(self.voting, receipt, "ProposalAccepted")[0]["version"])

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

    def artifacts(self, version: int, from_block: int = 0) -> list[dict[str, Any]]:
        """Artifacts recorded for ``version``, in chain order (from ``ArtifactRecorded``)."""
        return [
            {
                "version": int(e["version"]),
                "cid": onchain_to_str(bytes(e["digest"]), int(e["codec"])),
                "target": bytes(e["target"]).rstrip(b"\0").decode("utf-8", "replace"),
                "recorder": to_checksum_address(e["recorder"]),
            }
            for e in self.logs(self.ledger, "ArtifactRecorded", from_block, version=version)
        ]

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

    def reputation_root(self) -> tuple[bytes, int]:
        """The latest reputation root and the finalized round whose table it is (0: none)."""
        root, round_id = self.ledger.functions.reputationRoot().call()
        return bytes(root), int(round_id)

    # -- views ----------------------------------------------------------------------------

    def current_version(self) -> int:
        return int(self.ledger.functions.currentVersion().call())

    def version(self, version_id: int) -> dict[str, Any]:
        v = self._call(self.ledger.functions.version(version_id), f"read version {version_id}")
        return {
            "weights": tuple(v[0]),
            "metrics": tuple(v[1]),
            "parent": v[2],
            "round": v[3],
            "timestamp": v[4],
        }

    def current_round(self) -> int:
        return int(self.ledger.functions.currentRound().call())

    def round_info(self, round_id: int) -> dict[str, Any]:
        return _named(
            self.ledger,
            "round",
            self._call(self.ledger.functions.round(round_id), f"read round {round_id}"),
        )

    def node_info(self, node: str) -> dict[str, Any]:
        return _named(
            self.ledger,
            "nodeInfo",
            self.ledger.functions.nodeInfo(to_checksum_address(node)).call(),
        )

    def reputation_of(self, account: str) -> int:
        return int(self.ledger.functions.reputationOf(to_checksum_address(account)).call())

    def has_committed(self, round_id: int, node: str) -> bool:
        """Whether ``node`` committed directly or relayed in ``round_id`` (its registry slot)."""
        return round_id != 0 and int(self.node_info(node)["lastCommitRound"]) == round_id

    def batch(self, batch_id: int) -> dict[str, Any]:
        return _named(
            self.ledger,
            "batch",
            self._call(self.ledger.functions.batch(batch_id), f"read batch {batch_id}"),
        )

    def proposal(self, proposal_id: int) -> dict[str, Any]:
        return _named(
            self.voting,
            "proposal",
            self._call(self.voting.functions.proposal(proposal_id), f"read proposal {proposal_id}"),
        )

    def pending_proposal(self, round_id: int) -> int:
        return int(self.voting.functions.pendingProposal(round_id).call())

    def vote_of(self, proposal_id: int, validator: str) -> dict[str, Any]:
        state, approve, commitment = self.voting.functions.voteOf(
            proposal_id, to_checksum_address(validator)
        ).call()
        return {"state": state, "approve": approve, "commitment": commitment}

    # -- event readers (validators rebuild a round from these plus IPFS) -------------------

    def logs(self, contract: Contract, name: str, from_block: int = 0, **filters: Any):
        event = getattr(contract.events, name)
        return [
            dict(e["args"]) | {"blockNumber": e["blockNumber"], "logIndex": e["logIndex"]}
            for e in event.get_logs(from_block=from_block, argument_filters=filters or None)
        ]

    def commitments(self, round_id: int, from_block: int = 0) -> list[dict[str, Any]]:
        """Direct and relayed commitments of a round, in chain order."""
        return self.logs(self.ledger, "CommitmentAccepted", from_block, round=round_id)

    def skipped(self, round_id: int, from_block: int = 0) -> list[dict[str, Any]]:
        """Relayed commitments the ledger skipped (front-run, reused nonce, low reputation)."""
        return self.logs(self.ledger, "CommitmentSkipped", from_block, round=round_id)

    def batches(self, round_id: int, from_block: int = 0) -> list[dict[str, Any]]:
        return self.logs(self.ledger, "BatchPosted", from_block, round=round_id)

    def voided_leaves(self, batch_id: int, from_block: int = 0) -> list[dict[str, Any]]:
        return self.logs(self.ledger, "LeafVoided", from_block, batchId=batch_id)

    def proposals(self, round_id: int, from_block: int = 0) -> list[dict[str, Any]]:
        return self.logs(self.voting, "ProposalSubmitted", from_block, round=round_id)


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


def _named(contract: Contract, fn_name: str, value: Any) -> dict[str, Any]:
    """A struct returned by a view, as a dict keyed by the ABI's component names."""
    abi = next(i for i in contract.abi if i.get("type") == "function" and i["name"] == fn_name)
    components = abi["outputs"][0]["components"]
    out: dict[str, Any] = {}
    for comp, item in zip(components, value, strict=True):
        out[comp["name"]] = tuple(item) if comp["type"] == "tuple" else item
    return out
