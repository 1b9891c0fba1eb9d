"""What the event log does not list node by node: batched commitments, the voted lists and
the reputation tables (all on IPFS, named by CIDs the chain holds).

A Merkle batch puts only its root and a leaf count on chain (``BatchPosted``); the leaves are a
file on IPFS. So the event log alone says how many of a round's commitments came in batches
(the posted counts minus the voided leaves, exactly what the chain's ``commitCount`` holds) but
not whose they were. :func:`batch_leaves` fetches each batch's leaves file from a store and
turns every leaf that still counts into a ``BatchLeaf`` record with the fields of a
``CommitmentAccepted`` event, so the per-node and per-round views treat the three modes alike.
A leaves file the store cannot provide is skipped (the counts stay right, the names are then
unknown).

Likewise a finalized round's proposal names its included and excluded lists and its reputation
table (every node's score after the round) by CID, and the chain records only their roots:
:func:`round_outcomes` and :func:`current_scores` read them, for the per-node reputation views.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from web3 import Web3

from chainml.chain.eip712 import from_fixed, struct_hash
from chainml.chain.eventlog import Event, cid_or_none
from chainml.chain.merkle import commitment_leaf
from chainml.errors import ChainMLError, IntegrityError
from chainml.protocol.codecs import NODE_LIST_FORMAT, TABLE_FORMAT, decode_leaves, parse_json

log = logging.getLogger(__name__)

BATCH_LEAF = "BatchLeaf"
"""The name of the records :func:`batch_leaves` makes (never an event name on chain)."""


def batch_counts(events: list[Event]) -> Counter[int]:
    """Per round, the batch leaves that count: posted minus voided (what ``commitCount`` adds)."""
    rounds = {
        int(e.args["batchId"]): int(e.args["round"]) for e in events if e.name == "BatchPosted"
    }
    counts: Counter[int] = Counter()
    for e in events:
        if e.name == "BatchPosted":
            counts[int(e.args["round"])] += int(e.args["leafCount"])
        elif e.name == "LeafVoided" and int(e.args["batchId"]) in rounds:
            counts[rounds[int(e.args["batchId"])]] -= 1
    return counts


def batch_leaves(events: list[Event], fetch: Callable[[str], bytes] | None) -> list[Event]:
    """A ``BatchLeaf`` record per counting leaf of every posted batch, in chain order."""
    if fetch is None:
        return []
    voided = {
        (int(e.args["batchId"]), str(e.args["leaf"]).lower())
        for e in events
        if e.name == "LeafVoided"
    }
    out = []
    for e in events:
        if e.name != "BatchPosted" or not e.args.get("leaves"):
            continue
        batch_id = int(e.args["batchId"])
        try:
            file_round, leaves = decode_leaves(fetch(str(e.args["leaves"])))
        except ChainMLError as exc:
            log.warning("batch %d's leaves %s are unavailable: %s", batch_id, e.args["leaves"], exc)
            continue
        for index, signed in enumerate(leaves):
            c = signed.commitment
            leaf = "0x" + commitment_leaf(struct_hash(c), signed.r, signed.vs).hex()
            if (batch_id, leaf) in voided or c.round != file_round:
                continue
            out.append(
                Event(
                    block=e.block,
                    log_index=e.log_index,
                    tx=e.tx,
                    contract=e.contract,
                    address=e.address,
                    name=BATCH_LEAF,
                    args={
                        "round": c.round,
                        "node": Web3.to_checksum_address(c.node),
                        "update": cid_or_none(c.update_digest, c.update_codec),
                        "numSamples": c.num_samples,
                        "lossBefore": from_fixed(c.loss_before),
                        "lossAfter": from_fixed(c.loss_after),
                        "batchId": batch_id,
                        "index": index,
                    },
                )
            )
    return out


# -- voted lists and reputation tables --------------------------------------------------------

ROUND_OUTCOME = "RoundOutcome"
"""The name of the records :func:`round_outcomes` makes (never an event name on chain)."""


def _json_file(fetch: Callable[[str], bytes], cid: str | None, fmt: str, what: str) -> dict | None:
    """A chainml JSON file by CID, or None (with a warning) if the store cannot provide it."""
    if not cid:
        return None
    try:
        raw = parse_json(fetch(cid), what)
        if not isinstance(raw, dict) or raw.get("format") != fmt:
            raise IntegrityError(f"{cid} is not a {what}")
        return raw
    except (ChainMLError, ValueError, RecursionError) as exc:
        log.warning("%s %s is unavailable: %s", what, cid, exc)
        return None


def round_outcomes(events: list[Event], fetch: Callable[[str], bytes] | None) -> list[Event]:
    """A ``RoundOutcome`` record per node of every accepted proposal's voted lists (on IPFS):
    ``included`` or ``excluded``, with the node's score in the round's reputation table (the
    chain records only the table's root; a node's score is proven on chain only when it must
    be). Lists or tables the store cannot provide are skipped."""
    if fetch is None:
        return []
    accepted = {int(e.args["proposalId"]): e for e in events if e.name == "ProposalAccepted"}
    out = []
    for e in events:
        if e.name != "ProposalSubmitted" or int(e.args["proposalId"]) not in accepted:
            continue
        at = accepted[int(e.args["proposalId"])]
        proposal = e.args["proposal"]
        table = _json_file(fetch, proposal.get("reputationTable"), TABLE_FORMAT, "reputation table")
        scores = {str(n).lower(): int(s) for n, s in table["scores"]} if table else {}
        for kind in ("included", "excluded"):
            listed = _json_file(fetch, proposal.get(f"{kind}List"), NODE_LIST_FORMAT, "node list")
            for node in listed["nodes"] if listed else []:
                out.append(
                    Event(
                        block=at.block,
                        log_index=at.log_index,
                        tx=at.tx,
                        contract=at.contract,
                        address=at.address,
                        name=ROUND_OUTCOME,
                        args={
                            "round": int(e.args["round"]),
                            "node": Web3.to_checksum_address(node),
                            "outcome": kind,
                            "score": scores.get(str(node).lower()),
                            "initial": int(table["initial"]) if table else None,
                        },
                    )
                )
    return out


def current_scores(events: list[Event], fetch: Callable[[str], bytes] | None) -> dict[str, int]:
    """Every node's reputation in the latest finalized round's table (lower-case address
    keys); empty if there is none or the store cannot provide it."""
    if fetch is None:
        return {}
    accepted = {int(e.args["proposalId"]) for e in events if e.name == "ProposalAccepted"}
    latest = [
        e for e in events if e.name == "ProposalSubmitted" and int(e.args["proposalId"]) in accepted
    ]
    if not latest:
        return {}
    cid = latest[-1].args["proposal"].get("reputationTable")
    table = _json_file(fetch, cid, TABLE_FORMAT, "reputation table")
    return {str(n).lower(): int(s) for n, s in table["scores"]} if table else {}
