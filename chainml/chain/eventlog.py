"""The whole decoded event log of both chainml contracts, as JSON-friendly records.

Events are the chain's full history (storage only holds the latest state), so every
``chainml inspect`` view is built from one scan of the logs plus a few view calls. Unlike the
typed records of :mod:`chainml.chain.records` (one class per event the protocol reads), these
are generic, one :class:`Event` for any event, with values normalised for people and for
``--json``: bytes become 0x-hex, on-chain CIDs (a digest and a codec, as two fields or as a
``Cid`` struct) become CID strings, enums become their names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import event_abi_to_log_topic
from web3 import Web3
from web3.contract import Contract

from chainml.chain.artifacts import LEDGER, VOTING
from chainml.chain.connect import ChainSource
from chainml.chain.eip712 import from_fixed
from chainml.chain.reader import ROLES
from chainml.chain.records import ReputationReason
from chainml.chain.types import FaultReason
from chainml.errors import ChainError, ConfigError
from chainml.storage.cid import onchain_to_str

LOG_CHUNK_BLOCKS = 5_000
"""Blocks per eth_getLogs call: public RPCs cap the range (often at 10,000)."""
REPUTATION_REASONS = tuple(r.name.title().replace("_", "") for r in ReputationReason)
"""``Included``, ``Excluded``, ``ProposalRejected``, ``GatewayFault``."""
ROLE_NAMES = {"0x" + v.hex(): k for k, v in ROLES.items()}
CONTRACT_ALIASES = {"ledger": LEDGER, "voting": VOTING}
FIXED_POINT_LOSSES = {"lossBefore", "lossAfter"}
"""Commitment losses travel as 9-decimal fixed point; shown as floats."""

Progress = Callable[[int, int], None]
"""Called with (blocks scanned, blocks to scan) after each chunk."""


@dataclass(frozen=True)
class Event:
    """One decoded log entry."""

    block: int
    log_index: int
    tx: str
    contract: str
    address: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def addresses(self) -> set[str]:
        """Every address among the arguments, lower-cased, for node filters."""
        return {v.lower() for v in self.args.values() if isinstance(v, str) and _is_addr(v)}


def read_events(
    source: ChainSource,
    from_block: int | None = None,
    chunk: int = LOG_CHUNK_BLOCKS,
    progress: Progress | None = None,
) -> list[Event]:
    """Every chainml event from ``from_block`` (default: the deployment block) to the head."""
    ledger, voting = source.reader.ledger, source.reader.voting
    decoders = {**_decoders(ledger, LEDGER), **_decoders(voting, VOTING)}
    addresses = [ledger.address, voting.address]
    start = source.first_block if from_block is None else max(0, from_block)
    total = max(0, source.head - start + 1)
    events: list[Event] = []
    for lo in range(start, source.head + 1, chunk):
        hi = min(lo + chunk - 1, source.head)
        try:
            logs = source.w3.eth.get_logs(
                {"address": addresses, "fromBlock": lo, "toBlock": hi}  # type: ignore[typeddict-item]
            )
        except Exception as exc:
            raise ChainError(
                f"reading logs of blocks {lo}..{hi} from {source.url} failed: {exc}"
            ) from exc
        for log in logs:
            decoder = decoders.get(bytes(log["topics"][0])) if log["topics"] else None
            if decoder is not None:
                events.append(decoder(log))
        if progress is not None:
            progress(hi - start + 1, total)
    events.sort(key=lambda e: (e.block, e.log_index))
    return events


def filter_events(
    events: Iterable[Event],
    *,
    round_id: int | None = None,
    node: str | None = None,
    contract: str | None = None,
    name: str | None = None,
) -> list[Event]:
    """Events of one round (votes and voided leaves follow their proposal and batch), naming
    one address, of one contract (``ledger``, ``voting``, a name or an address) or one name."""
    events = list(events)
    contract_name = CONTRACT_ALIASES.get(contract.lower(), contract) if contract else None
    rounds = _round_of_ids(events) if round_id is not None else ({}, {})
    out = []
    for e in events:
        if contract_name and contract_name.lower() not in (e.contract.lower(), e.address.lower()):
            continue
        if name and e.name.lower() != name.lower():
            continue
        if node and node.lower() not in e.addresses():
            continue
        if round_id is not None and event_round(e, *rounds) != round_id:
            continue
        out.append(e)
    return out


def event_round(
    event: Event, proposal_rounds: dict[int, int], batch_rounds: dict[int, int]
) -> int | None:
    """The round an event belongs to, following proposal and batch ids."""
    if "round" in event.args:
        return int(event.args["round"])
    if "proposalId" in event.args:
        return proposal_rounds.get(int(event.args["proposalId"]))
    if "batchId" in event.args:
        return batch_rounds.get(int(event.args["batchId"]))
    return None


def check_address(value: str) -> str:
    """A checksummed address, or a ConfigError that says what is wrong with ``value``."""
    if not Web3.is_address(value):
        raise ConfigError(f"{value!r} is not an Ethereum address (expected 0x and 40 hex digits)")
    return Web3.to_checksum_address(value)


def cid_or_none(digest: bytes | str, codec: int) -> str | None:
    """A CID string for an on-chain pair; None for the all-zero "no CID"."""
    raw = bytes.fromhex(digest[2:]) if isinstance(digest, str) else bytes(digest)
    if not any(raw) and codec == 0:
        return None
    try:
        return onchain_to_str(raw, codec)
    except Exception:  # not a codec chainml stores: still show what the chain holds
        return f"0x{raw.hex()}/codec-{codec:#x}"


# -- decoding -----------------------------------------------------------------------------


def _decoders(contract: Contract, contract_name: str) -> dict[bytes, Callable[[Any], Event]]:
    out: dict[bytes, Callable[[Any], Event]] = {}
    for abi in contract.abi:
        if abi.get("type") != "event":
            continue
        event = getattr(contract.events, abi["name"])()

        def decode(log: Any, event: Any = event, abi: dict[str, Any] = abi) -> Event:
            raw = event.process_log(log)
            return Event(
                block=int(log["blockNumber"]),
                log_index=int(log["logIndex"]),
                tx="0x" + bytes(log["transactionHash"]).hex(),
                contract=contract_name,
                address=contract.address,
                name=abi["name"],
                args=_normalise_args(abi["inputs"], raw["args"]),
            )

        out[bytes(event_abi_to_log_topic(abi))] = decode
    return out


def _normalise_args(inputs: list[dict[str, Any]], values: Any) -> dict[str, Any]:
    args = {i["name"]: _normalise(i, _get(values, i["name"], n)) for n, i in enumerate(inputs)}
    for key in FIXED_POINT_LOSSES & args.keys():
        args[key] = from_fixed(args[key])
    return _pair_cids(args)


def _normalise(abi: dict[str, Any], value: Any) -> Any:
    kind, internal = abi["type"], abi.get("internalType", "")
    if kind == "tuple":
        comps = abi["components"]
        if [c["name"] for c in comps] == ["digest", "codec"]:
            return cid_or_none(_get(value, "digest", 0), int(_get(value, "codec", 1)))
        return _normalise_args(comps, value)
    if isinstance(value, bytes | bytearray):
        hexed = "0x" + bytes(value).hex()
        return ROLE_NAMES.get(hexed, hexed) if abi["name"] == "role" else hexed
    if internal.endswith("ReputationReason"):
        return REPUTATION_REASONS[value] if value < len(REPUTATION_REASONS) else int(value)
    if internal.endswith("FaultReason"):
        return FaultReason(value).name.lower()
    if kind == "address":
        return Web3.to_checksum_address(value)
    return value


def _pair_cids(args: dict[str, Any]) -> dict[str, Any]:
    """Fold ``xDigest`` + ``xCodec`` into one ``x`` CID string."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key.endswith("Codec") and key[:-5] + "Digest" in args:
            continue
        if key.endswith("Digest") and key[:-6] + "Codec" in args:
            out[key[:-6]] = cid_or_none(value, int(args[key[:-6] + "Codec"]))
        else:
            out[key] = value
    return out


def _get(values: Any, name: str, index: int) -> Any:
    if isinstance(values, dict) or hasattr(values, "keys"):
        return values[name]
    return values[index]


def _round_of_ids(events: list[Event]) -> tuple[dict[int, int], dict[int, int]]:
    proposals = {
        int(e.args["proposalId"]): int(e.args["round"])
        for e in events
        if e.name == "ProposalSubmitted"
    }
    batches = {
        int(e.args["batchId"]): int(e.args["round"]) for e in events if e.name == "BatchPosted"
    }
    return proposals, batches


def _is_addr(value: str) -> bool:
    return len(value) == 42 and value.startswith("0x") and Web3.is_address(value)
