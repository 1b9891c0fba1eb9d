"""The one typed read layer: everything chainml reads from a deployment, as records.

:class:`ChainReader` serves the actors, the protocol functions, ``chainml verify`` and
``chainml inspect`` alike:

- the contracts' views as typed records (:mod:`chainml.chain.records`): ``version``,
  ``round_info``, ``node_info``, ``batch``, ``proposal``, ``vote_of``, the counters and roles;
- their events as typed records: ``events(RoundFinalized, round=3)`` and the shorthands
  ``commitments``, ``batches``, ``voided_leaves``, ``proposals``;
- bulk reads, one JSON-RPC batch per chunk instead of a round trip per call: ``node_infos``
  and ``call_many``;
- state rebuilt from events alone, the same on any node at any later time: ``registry_at``.

``chainml.chain.client.Ledger`` is a reader that also sends transactions; a reader alone
needs no key and sends nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self, TypeVar

from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from chainml.chain.artifacts import LEDGER, PARAMS, VOTING, abi
from chainml.chain.deployments import Deployments
from chainml.chain.errors import RevertDecoder, TransactionError, revert_data
from chainml.chain.records import (
    ArtifactRecorded,
    BatchInfo,
    BatchPosted,
    CommitmentAccepted,
    CommitmentSkipped,
    EventRecord,
    LeafVoided,
    NodeDeactivated,
    NodeGatewayChanged,
    NodeInfo,
    NodeReactivated,
    NodeRegistered,
    ProposalInfo,
    ProposalSubmitted,
    RoundInfo,
    VersionInfo,
    VoteInfo,
    decode,
)
from chainml.chain.types import SecurityParams
from chainml.chain.words import decode_static, topic_address
from chainml.errors import ChainError

E = TypeVar("E", bound=EventRecord)
ROLES = {
    "admin": b"\x00" * 32,
    "aggregator": keccak(text="AGGREGATOR_ROLE"),
    "validator": keccak(text="VALIDATOR_ROLE"),
    "voting": keccak(text="VOTING_ROLE"),
}
CHUNK = 250
"""Calls per JSON-RPC batch."""
ZERO_ADDRESS = "0x" + "0" * 40


@dataclass(frozen=True)
class RegistryEntry:
    """A node's registry state rebuilt from events."""

    registered: bool = False
    active: bool = False
    gateway: str = ZERO_ADDRESS


class ChainReader:
    """Typed reads of a deployed ChainMLLedger + ChainMLVoting pair (and the ChainMLParams
    contract the ledger created)."""

    def __init__(self, w3: Web3, ledger_address: str, voting_address: str) -> None:
        self.w3 = w3
        self.ledger: Contract = w3.eth.contract(
            address=to_checksum_address(ledger_address), abi=abi(LEDGER)
        )
        self.voting: Contract = w3.eth.contract(
            address=to_checksum_address(voting_address), abi=abi(VOTING)
        )
        self._params: Contract | None = None
        self.decoder = RevertDecoder([abi(LEDGER), abi(VOTING), abi(PARAMS)])
        self._outputs: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @classmethod
    def from_deployments(cls, w3: Web3, deployments: Deployments) -> Self:
        return cls(w3, deployments.address(LEDGER), deployments.address(VOTING))

    @property
    def params(self) -> Contract:
        """The ChainMLParams contract the ledger created (looked up once)."""
        if self._params is None:
            address = self.ledger.functions.params().call()
            self._params = self.w3.eth.contract(address=address, abi=abi(PARAMS))
        return self._params

    def contract(self, name: str) -> Contract:
        return {LEDGER: self.ledger, VOTING: self.voting, PARAMS: self.params}[name]

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, fn: ContractFunction, action: str) -> Any:
        """A view call; a revert becomes the decoded ``ContractRevert``."""
        try:
            return fn.call()
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is None:
                raise TransactionError(f"{action} failed: {exc}") from exc
            raise self.decoder.error(action, data) from exc

    def _outputs_of(self, contract: Contract, fn_name: str) -> list[dict[str, Any]]:
        """The ABI outputs of ``fn_name``, a struct's components when it returns one."""
        key = (contract.address, fn_name)
        if key not in self._outputs:
            item = next(
                i for i in contract.abi if i.get("type") == "function" and i["name"] == fn_name
            )
            outputs = item["outputs"]
            if len(outputs) == 1 and outputs[0]["type"] == "tuple":
                outputs = outputs[0]["components"]
            self._outputs[key] = outputs
        return self._outputs[key]

    def _view(self, record: type, contract: Contract, fn_name: str, *args: Any) -> Any:
        value = self._call(getattr(contract.functions, fn_name)(*args), f"read {fn_name}{args}")
        return decode(record, self._outputs_of(contract, fn_name), value)

    # -- views ------------------------------------------------------------------------------

    def current_version(self) -> int:
        return int(self.ledger.functions.currentVersion().call())

    def version(self, version_id: int) -> VersionInfo:
        return self._view(VersionInfo, self.ledger, "version", version_id)

    def current_round(self) -> int:
        return int(self.ledger.functions.currentRound().call())

    def round_info(self, round_id: int) -> RoundInfo:
        return self._view(RoundInfo, self.ledger, "round", round_id)

    def node_info(self, node: str) -> NodeInfo:
        return self._view(NodeInfo, self.ledger, "nodeInfo", to_checksum_address(node))

    def batch(self, batch_id: int) -> BatchInfo:
        return self._view(BatchInfo, self.ledger, "batch", batch_id)

    def proposal(self, proposal_id: int) -> ProposalInfo:
        return self._view(ProposalInfo, self.voting, "proposal", proposal_id)

    def pending_proposal(self, round_id: int) -> int:
        return int(self.voting.functions.pendingProposal(round_id).call())

    def vote_of(self, proposal_id: int, validator: str) -> VoteInfo:
        return self._view(
            VoteInfo, self.voting, "voteOf", proposal_id, to_checksum_address(validator)
        )

    def has_role(self, role: str, account: str) -> bool:
        return self.ledger.functions.hasRole(ROLES[role], to_checksum_address(account)).call()

    def is_validator_for(self, round_id: int, account: str) -> bool:
        """Whether ``account`` is in round ``round_id``'s validator term."""
        fn = self.ledger.functions.isValidatorFor(round_id, to_checksum_address(account))
        return bool(fn.call())

    def reputation_of(self, account: str) -> int:
        return int(self.ledger.functions.reputationOf(to_checksum_address(account)).call())

    def reputation_root(self) -> tuple[bytes, int]:
        """The latest reputation root and the finalized round whose table it is (0: none)."""
        root, round_id = self.ledger.functions.reputationRoot().call()
        return bytes(root), int(round_id)

    def initial_reputation(self) -> int:
        return int(self.ledger.functions.initialReputation().call())

    def security_params(self) -> SecurityParams:
        return SecurityParams.from_abi(self.params.functions.current().call())

    def bond_of(self, gateway: str) -> tuple[int, int]:
        amount, until = self.params.functions.bondOf(to_checksum_address(gateway)).call()
        return int(amount), int(until)

    def reward_of(self, account: str) -> int:
        return int(self.params.functions.rewardOf(to_checksum_address(account)).call())

    def counts(self) -> dict[str, int]:
        """The contracts' counters (nodes, validators, versions, batches, proposals, ...)."""
        fns, votes = self.ledger.functions, self.voting.functions
        calls = [fns.nodeCount(), fns.validatorCount(), fns.versionCount(), fns.currentVersion(),
                 fns.currentRound(), fns.batchCount(), votes.proposalCount()]  # fmt: skip
        names = ("nodes", "validators", "versions", "current_version", "current_round",
                 "batches", "proposals")  # fmt: skip
        return {n: int(v) for n, v in zip(names, self.call_many(calls), strict=True)}

    # -- events -----------------------------------------------------------------------------

    def events(
        self, record: type[E], from_block: int = 0, to_block: int | str = "latest", **filters: Any
    ) -> list[E]:
        """Every ``record`` event in ``[from_block, to_block]``, in chain order; ``filters``
        name indexed arguments in snake case (``round=3``, ``batch_id=7``)."""
        contract = self.contract(record.contract)
        event = getattr(contract.events, record.__name__)
        camel = {_camel(k): v for k, v in filters.items()}
        logs = event.get_logs(
            from_block=from_block, to_block=to_block, argument_filters=camel or None
        )
        params = event.abi["inputs"]
        out = [
            decode(
                record,
                params,
                log["args"],
                block=int(log["blockNumber"]),
                log_index=int(log["logIndex"]),
                tx="0x" + bytes(log["transactionHash"]).hex(),
            )
            for log in logs
        ]
        return sorted(out, key=lambda e: e.position)

    def commitments(self, round_id: int, from_block: int = 0) -> list[CommitmentAccepted]:
        """Direct and relayed commitments of a round, in chain order."""
        return self.events(CommitmentAccepted, from_block, round=round_id)

    def skipped(self, round_id: int, from_block: int = 0) -> list[CommitmentSkipped]:
        """Relayed commitments the ledger skipped (front-run, reused nonce, low reputation)."""
        return self.events(CommitmentSkipped, from_block, round=round_id)

    def batches(self, round_id: int, from_block: int = 0) -> list[BatchPosted]:
        return self.events(BatchPosted, from_block, round=round_id)

    def voided_leaves(self, batch_id: int, from_block: int = 0) -> list[LeafVoided]:
        return self.events(LeafVoided, from_block, batch_id=batch_id)

    def proposals(self, round_id: int, from_block: int = 0) -> list[ProposalSubmitted]:
        return self.events(ProposalSubmitted, from_block, round=round_id)

    def artifacts(self, version: int, from_block: int = 0) -> list[ArtifactRecorded]:
        """Artifacts recorded for ``version`` (``chainml export``), in chain order."""
        return self.events(ArtifactRecorded, from_block, version=version)

    # -- bulk reads -------------------------------------------------------------------------

    def call_many(
        self,
        calls: Sequence[ContractFunction],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        """Results of view ``calls`` in order, ``CHUNK`` per JSON-RPC batch (one by one on an
        endpoint that refuses batches)."""
        out: list[Any] = []
        for lo in range(0, len(calls), CHUNK):
            chunk = calls[lo : lo + CHUNK]
            try:
                with self.w3.batch_requests() as batch:
                    for fn in chunk:
                        batch.add(fn)
                    out.extend(batch.execute())
            except Exception:  # no batch support on this endpoint: one by one
                out.extend(fn.call() for fn in chunk)
            if progress is not None:
                progress(len(out), len(calls))
        return out

    def call_records(
        self,
        record: type,
        calls: Sequence[ContractFunction],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        """:meth:`call_many` of views that all return ``record``."""
        results = self.call_many(calls, progress)
        return [
            decode(record, self._outputs_of(self.contract_of(fn), fn.fn_name), value)
            for fn, value in zip(calls, results, strict=True)
        ]

    def contract_of(self, fn: ContractFunction) -> Contract:
        return self.ledger if fn.address == self.ledger.address else self.voting

    def node_infos(
        self,
        addresses: Sequence[str],
        block: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, NodeInfo]:
        """``nodeInfo`` of every address (at ``block``, default latest), keyed by lower-case
        address, in one JSON-RPC batch per ``CHUNK`` addresses.

        ``reputation`` is the chain's cached, last proven score. With a reputation book
        attached (``chainml.protocol.settlement.attach``) and the latest block, it is each
        node's current score in the latest reputation table instead.
        """
        fn_abi = next(
            i for i in self.ledger.abi if i.get("type") == "function" and i["name"] == "nodeInfo"
        )
        struct = fn_abi["outputs"][0]
        types = ["(" + ",".join(_abi_type(c) for c in struct["components"]) + ")"]
        tag = "latest" if block is None else hex(block)
        # Encoded by hand: web3's encode_abi re-validates the whole ABI per call (~5 ms each).
        selector = "0x" + function_abi_to_4byte_selector(fn_abi).hex()
        unique = list(dict.fromkeys(a.lower() for a in addresses))
        out: dict[str, NodeInfo] = {}
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            to = self.ledger.address
            requests = [
                ("eth_call", [{"to": to, "data": self._node_call(selector, a)}, tag]) for a in chunk
            ]
            responses = self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
            if not isinstance(responses, list):
                raise ChainError(f"the chain refused a batch of nodeInfo reads: {responses}")
            ordered = sorted(responses, key=lambda r: r["id"])
            for address, response in zip(chunk, ordered, strict=True):
                if "error" in response:
                    raise ChainError(f"nodeInfo({address}) at {tag} failed: {response['error']}")
                (values,) = decode_static(types, bytes.fromhex(response["result"][2:]))
                out[address] = _node_info(values)
            if progress is not None:
                progress(min(start + CHUNK, len(unique)), len(unique))
        book = getattr(self, "reputation_book", None)
        if book is not None and block is None and out:
            table = book.table(self)
            for address, info in out.items():
                if info.registered and address in table:
                    out[address] = replace(info, reputation=table.score(address))
        return out

    def _node_call(self, selector: str, address: str) -> str:
        """``nodeInfo(address)`` call data; anything but a plain address goes through web3
        (and its error)."""
        if _HEX_ADDRESS.fullmatch(address):
            return selector + address[2:].rjust(64, "0")
        return str(self.ledger.encode_abi("nodeInfo", [to_checksum_address(address)]))

    # -- state rebuilt from events ------------------------------------------------------------

    def registry_at(
        self, addresses: Sequence[str], block: int, from_block: int = 0
    ) -> dict[str, RegistryEntry]:
        """Each address's registry state as of the end of ``block`` (lower-case keys),
        rebuilt from registry events alone, so it is the same on any node, any time later.
        Costs the addresses' own events (a per-node index), not a pass over the fleet's."""
        wanted = {a.lower() for a in addresses}
        state = {a: RegistryEntry() for a in wanted}
        by_node = _node_index(self._covering(block, from_block))
        for node in wanted:
            for e in by_node.get(node, ()):
                if e.block > block:
                    break  # each node's events are in chain order
                if isinstance(e, NodeRegistered):
                    state[node] = RegistryEntry(True, True, e.gateway)
                elif isinstance(e, NodeDeactivated):
                    state[node] = replace(state[node], active=False)
                elif isinstance(e, NodeReactivated):
                    state[node] = replace(state[node], active=True)
                else:
                    state[node] = replace(state[node], gateway=e.gateway)  # type: ignore[attr-defined]
        return state

    def registry_events(self, block: int, from_block: int = 0) -> list[EventRecord]:
        """The registry events in ``[from_block, block]`` in chain order, read once per
        process: a later call reads only the blocks it has not seen.

        A block hash commits to every block before it, so the cache is used only while the
        chain still has the same block where the cached events end (an Anvil restarted from
        an older state, or any reorganisation, makes this process read everything again).
        """
        return [e for e in self._covering(block, from_block) if e.block <= block]

    def _covering(self, block: int, from_block: int) -> list[EventRecord]:
        """The registry events from ``from_block`` in chain order, through ``block`` at least
        (the cached list, which may run further)."""
        provider = getattr(self.w3.provider, "endpoint_uri", None) or str(id(self.w3))
        key = (str(provider), str(self.ledger.address), from_block)
        cached = _registry_cache.get(key)
        if cached is not None and self._block_hash(cached[0]) != cached[1]:
            cached = None
        if cached is not None and block <= cached[0]:
            return cached[2]
        start, logs = (cached[0] + 1, list(cached[2])) if cached is not None else (from_block, [])
        end_hash = self._block_hash(block)
        logs += self._registry_logs(start, block)
        if end_hash is not None and self._block_hash(block) == end_hash:
            _registry_cache[key] = (block, end_hash, logs)
        return [e for e in logs if e.block <= block]

    def _registry_logs(self, start: int, end: int) -> list[EventRecord]:
        """The registry events in ``[start, end]`` in chain order, from one raw ``eth_getLogs``:
        every argument but a registration's profile is an indexed address, read from its topic
        (web3's formatting and event decoding cost about 3 ms a log; a fleet has thousands)."""
        query = {
            "address": self.ledger.address,
            "fromBlock": hex(start),
            "toBlock": hex(end),
            "topics": [["0x" + t.hex() for t in _REGISTRY_TOPICS]],
        }
        response = self.w3.provider.make_request("eth_getLogs", [query])  # type: ignore[arg-type]
        if not isinstance(response, dict) or "error" in response or "result" not in response:
            raise ChainError(f"reading the registry events failed: {response}")
        out: list[EventRecord] = []
        for log in response["result"]:
            topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
            record = _REGISTRY_TOPICS[topics[0]]
            where = {
                "block": int(log["blockNumber"], 16),
                "log_index": int(log["logIndex"], 16),
                "tx": str(log["transactionHash"]),
            }
            addresses = [topic_address(t) for t in topics[1:]]
            if record is NodeRegistered:
                digest, codec = decode_static(["bytes32", "uint64"], bytes.fromhex(log["data"][2:]))
                out.append(NodeRegistered(**where, node=addresses[0], gateway=addresses[1],
                                          profile=(bytes(digest), int(codec))))  # fmt: skip
            elif record is NodeGatewayChanged:
                out.append(NodeGatewayChanged(**where, node=addresses[0], previous=addresses[1],
                                              gateway=addresses[2]))  # fmt: skip
            else:
                out.append(record(**where, node=addresses[0]))  # type: ignore[call-arg]
        return sorted(out, key=lambda e: e.position)

    def _block_hash(self, block: int) -> bytes | None:
        """The hash of ``block`` (one raw ``eth_getBlockByNumber``: web3's block formatting
        cost more than the call)."""
        response = self.w3.provider.make_request("eth_getBlockByNumber", [hex(block), False])
        found = response.get("result") if isinstance(response, dict) else None
        return bytes.fromhex(found["hash"][2:]) if found and found.get("hash") else None


_registry_cache: dict[tuple[str, str, int], tuple[int, bytes, list[EventRecord]]] = {}
"""Registry events already read by this process, per (RPC endpoint, ledger, from_block): up
to which block, that block's hash, and the events in chain order."""

_HEX_ADDRESS = re.compile(r"0x[0-9a-f]{40}")

_REGISTRY_TOPICS: dict[bytes, type[EventRecord]] = {
    keccak(text=signature): record
    for signature, record in (
        ("NodeRegistered(address,address,bytes32,uint64)", NodeRegistered),
        ("NodeDeactivated(address)", NodeDeactivated),
        ("NodeReactivated(address)", NodeReactivated),
        ("NodeGatewayChanged(address,address,address)", NodeGatewayChanged),
    )
}
_node_indexes: dict[int, tuple[list[EventRecord], dict[str, list[EventRecord]]]] = {}
"""Each cached event list's events per node (keyed by the list's id, which it pins)."""


def _node_index(logs: list[EventRecord]) -> dict[str, list[EventRecord]]:
    found = _node_indexes.get(id(logs))
    if found is not None and found[0] is logs:
        return found[1]
    index: dict[str, list[EventRecord]] = {}
    for e in logs:
        index.setdefault(e.node.lower(), []).append(e)  # type: ignore[attr-defined]
    if len(_node_indexes) > 8:
        _node_indexes.clear()
    _node_indexes[id(logs)] = (logs, index)
    return index


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p.title() for p in rest)


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"] == "tuple":
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")"
    return param["type"]


def _node_info(v: tuple[Any, ...]) -> NodeInfo:
    """A decoded ``NodeView`` tuple (the ABI's component order) as a record; written out
    rather than through :func:`decode`, because a round reads thousands of them."""
    return NodeInfo(
        registered=bool(v[0]),
        active=bool(v[1]),
        gateway=to_checksum_address(v[2]),
        last_commit_round=int(v[3]),
        next_nonce=int(v[4]),
        reputation=int(v[5]),
        last_settled_round=int(v[6]),
        profile=(bytes(v[7][0]), int(v[7][1])),
        must_prove=bool(v[8]),
    )
