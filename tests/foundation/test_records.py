"""The typed records follow the compiled contracts: every view's and event's ABI names map to
exactly one record field each, nested structs included, so a contract change that the records
do not follow fails here instead of as a KeyError mid-round."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from chainml.chain.artifacts import abi
from chainml.chain.records import (
    EVENT_RECORDS,
    VIEW_RECORDS,
    EventRecord,
    RoundInfo,
    decode,
    field_sources,
)
from chainml.chain.types import Proposal, RoundStatus


def _check(record: type, params: list[dict[str, Any]], where: str) -> None:
    sources = field_sources(record, params)
    used = [name for names in sources.values() for name in names]
    assert sorted(used) == sorted(p["name"] for p in params), where
    hints = typing.get_type_hints(record)
    by_name = {p["name"]: p for p in params}
    for field, names in sources.items():
        param = by_name[names[0]]
        inner = hints[field]
        if param["type"] == "tuple" and dataclasses.is_dataclass(inner):
            _check(inner, param["components"], f"{where}.{field}")


@pytest.mark.parametrize("record", list(VIEW_RECORDS), ids=lambda r: r.__name__)
def test_view_records_match_the_abi(record: type) -> None:
    contract, fn_name = VIEW_RECORDS[record]
    item = next(i for i in abi(contract) if i.get("type") == "function" and i["name"] == fn_name)
    outputs = item["outputs"]
    params = outputs[0]["components"] if len(outputs) == 1 else outputs
    _check(record, params, f"{contract}.{fn_name}")


@pytest.mark.parametrize("record", EVENT_RECORDS, ids=lambda r: r.__name__)
def test_event_records_match_the_abi(record: type[EventRecord]) -> None:
    item = next(
        i for i in abi(record.contract) if i.get("type") == "event" and i["name"] == record.__name__
    )
    _check(record, item["inputs"], f"{record.contract}.{record.__name__}")


def test_decode_converts_types() -> None:
    """Enums, CIDs, addresses and bytes come out typed, from a tuple or a mapping alike."""
    item = next(i for i in abi("ChainMLLedger") if i.get("name") == "round")
    components = item["outputs"][0]["components"]
    values = [0] * len(components)
    values[0] = 3
    values[12] = b"\x01" * 32
    info = decode(RoundInfo, components, tuple(values))
    assert info.status is RoundStatus.FINALIZED and info.included_root == b"\x01" * 32
    mapping = {c["name"]: v for c, v in zip(components, values, strict=True)}
    assert decode(RoundInfo, components, mapping) == info
    event = next(i for i in abi("ChainMLVoting") if i.get("name") == "ProposalSubmitted")
    struct = event["inputs"][3]["components"]
    raw = {c["name"]: 0 for c in struct}
    raw |= {c["name"]: (b"\x02" * 32, 0x55) for c in struct if c["type"] == "tuple"}
    raw |= {c["name"]: b"\x03" * 32 for c in struct if c["type"] == "bytes32"}
    proposal = decode(Proposal, struct, raw)
    assert proposal.aggregate == (b"\x02" * 32, 0x55) and proposal.reputation_root == b"\x03" * 32
