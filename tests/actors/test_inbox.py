"""The gateway's inbox: deliveries survive a restart, a redelivery replaces, junk is ignored."""

from __future__ import annotations

from pathlib import Path

from chainml.actors.inbox import Inbox
from chainml.chain.eip712 import Commitment, SignedCommitment, sign_commitment
from chainml.chain.keys import dev_node_account


def signed(index: int, round_id: int, nonce: int = 0) -> SignedCommitment:
    node = dev_node_account(index)
    c = Commitment(
        round=round_id, node=node.address, base_version=round_id - 1,
        update_digest=bytes([index]) * 32, update_codec=0x55, num_samples=20,
        loss_before=2, loss_after=1, nonce=nonce,
    )  # fmt: skip
    return sign_commitment(node, c, b"\x11" * 32)


def test_deliveries_are_read_back_by_round_and_replaced_per_node(tmp_path: Path) -> None:
    box = Inbox(tmp_path / "inbox")
    box.put(signed(1, 3))
    box.put(signed(2, 3))
    box.put(signed(1, 4))
    again = Inbox(tmp_path / "inbox")  # a restarted gateway
    assert sorted(s.commitment.node for s in again.pending(3)) == sorted(
        [dev_node_account(1).address, dev_node_account(2).address]
    )
    box.put(signed(1, 3, nonce=7))  # the node delivers again: the newer one counts
    mine = [s for s in again.pending(3) if s.commitment.node == dev_node_account(1).address]
    assert [s.commitment.nonce for s in mine] == [7]
    assert len(again.pending(3)) == 2


def test_junk_is_ignored_and_old_rounds_are_discarded(tmp_path: Path) -> None:
    box = Inbox(tmp_path)
    box.put(signed(1, 2))
    box.put(signed(2, 5))
    (tmp_path / "r5-0xjunk.json").write_text("{not json")
    assert [s.commitment.node for s in box.pending(5)] == [dev_node_account(2).address]
    assert box.discard_before(5) == 1
    assert box.pending(2) == [] and len(box.pending(5)) == 1
    assert not list(tmp_path.glob(".*.tmp"))  # writes are atomic: no temporary file left
