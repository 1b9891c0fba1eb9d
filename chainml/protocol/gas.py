"""Gas of one round, read back from the chain (so a resumed run reports it too).

Every transaction that emitted an event about the round is found through the event logs and
charged to one phase; receipts give its gas. Challenges (``LeafVoided`` of the round's
batches) are their own phase, so an honest all-in figure leaves nothing out. Settlement is the
reputation proofs against the round's root (``ReputationProven``): none in a round that puts
no node below the initial score, since finalizing records one root for every node.
"""

from __future__ import annotations

from chainml.chain.client import Ledger

# (contract attribute, event, argument that names the round or proposal, phase), in priority
# order: a transaction is charged to the first phase whose event it emitted.
_ROUND_EVENTS = (
    ("ledger", "RoundOpened", "open"),
    ("ledger", "CommitmentAccepted", "commit"),
    ("ledger", "CommitmentsRelayed", "commit"),
    ("ledger", "BatchPosted", "commit"),
    ("ledger", "CommitPhaseClosed", "close"),
    ("ledger", "RoundClosed", "close"),
    ("voting", "ProposalSubmitted", "propose"),
    ("ledger", "RoundFinalized", "finalize"),
    ("ledger", "ReputationProven", "settle"),
    ("ledger", "RoundSettled", "settle"),
)
_PROPOSAL_EVENTS = (
    ("voting", "VoteCommitted", "vote"),
    ("voting", "VoteRevealed", "vote"),
    ("voting", "ProposalRejected", "finalize"),
    ("voting", "VoteForfeited", "vote"),
)
_BATCH_EVENTS = (("ledger", "LeafVoided", "challenge"),)
PHASES = ("open", "commit", "challenge", "close", "propose", "vote", "finalize", "settle")


def round_gas(ledger: Ledger, round_id: int, from_block: int = 0) -> dict[str, int]:
    phase_of_tx: dict[bytes, str] = {}
    proposal_ids: list[int] = []
    batch_ids: list[int] = []

    def collect(contract_name: str, event: str, phase: str, **filters: int) -> list[dict]:
        contract = getattr(ledger, contract_name)
        logs = getattr(contract.events, event).get_logs(
            from_block=from_block, argument_filters=filters
        )
        for log in logs:
            phase_of_tx.setdefault(bytes(log["transactionHash"]), phase)
        return logs

    for contract_name, event, phase in _ROUND_EVENTS:
        logs = collect(contract_name, event, phase, round=round_id)
        if event == "ProposalSubmitted":
            proposal_ids = [int(log["args"]["proposalId"]) for log in logs]
        if event == "BatchPosted":
            batch_ids = [int(log["args"]["batchId"]) for log in logs]
    for proposal_id in proposal_ids:
        for contract_name, event, phase in _PROPOSAL_EVENTS:
            collect(contract_name, event, phase, proposalId=proposal_id)
    for batch_id in batch_ids:
        for contract_name, event, phase in _BATCH_EVENTS:
            # A challenge also moves the gateway's reputation; it is still a challenge.
            for log in collect(contract_name, event, phase, batchId=batch_id):
                phase_of_tx[bytes(log["transactionHash"])] = phase
    totals = dict.fromkeys(PHASES, 0)
    hashes = list(phase_of_tx)
    for start in range(0, len(hashes), 250):
        chunk = hashes[start : start + 250]
        with ledger.w3.batch_requests() as batch:
            for tx_hash in chunk:
                batch.add(ledger.w3.eth.get_transaction_receipt(tx_hash))
            receipts = batch.execute()
        for tx_hash, receipt in zip(chunk, receipts, strict=True):
            totals[phase_of_tx[tx_hash]] += int(receipt["gasUsed"])
    totals["total"] = sum(totals[p] for p in PHASES)
    totals["transactions"] = len(hashes)
    return totals
