"""How signed commitments reach a gateway without the gateway listening on a port.

A node client drops its signed commitment into the gateway's inbox directory as one small JSON
file (written atomically: a temporary file, then a rename); the gateway reads the directory on
each tick. Files stay until the round is over, so a restarted gateway finds them again, and the
chain tells it which of them are already on chain. The file format is the batch leaves format
(``chainml.protocol.codecs.encode_leaves``) with one leaf, so nothing new is parsed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from chainml.chain.eip712 import SignedCommitment
from chainml.errors import IntegrityError
from chainml.protocol.codecs import decode_leaves, encode_leaves

log = logging.getLogger(__name__)


class Inbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def put(self, signed: SignedCommitment) -> Path:
        """Deliver one signed commitment (a second delivery of the same node replaces it)."""
        c = signed.commitment
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / f"r{c.round}-{c.node.lower()}.json"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(encode_leaves(c.round, [signed]))
        os.replace(tmp, target)
        return target

    def pending(self, round_id: int) -> list[SignedCommitment]:
        """Every readable commitment delivered for ``round_id``, in node address order."""
        out = []
        for path in sorted(self.path.glob(f"r{round_id}-*.json")):
            try:
                file_round, leaves = decode_leaves(path.read_bytes())
            except (OSError, IntegrityError) as exc:
                log.warning("gateway inbox: ignoring %s (%s)", path.name, exc)
                continue
            out.extend(s for s in leaves if file_round == round_id)
        return out

    def discard_before(self, round_id: int) -> int:
        """Remove deliveries for rounds before ``round_id`` (they can no longer go on chain)."""
        removed = 0
        for path in self.path.glob("r*-*.json"):
            try:
                if int(path.name[1:].split("-", 1)[0]) < round_id:
                    path.unlink(missing_ok=True)
                    removed += 1
            except ValueError:
                continue
        return removed
