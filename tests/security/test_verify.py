"""`chainml verify` misses nothing (issue 12, item 6): one changed byte in any finalized
version's weights or metrics, any included update, any batch's leaves file or its round's
reputation table is reported under that version, naming the block at fault, as a corrupt block
and not as an aggregate mismatch.
The wave-1 verify is run on the same corruption to show what it missed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.cli.main import main
from chainml.protocol.payloads import decode_leaves
from chainml.protocol.settlement import table_ref
from chainml.storage.cid import onchain_to_str, to_cid_bytes
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.store import EMBEDDED_SUBDIR
from chainml.swarm.config import SwarmConfig
from tests.security.conftest import SwarmEnv
from tests.security.wave1 import Wave1Ledger, wave1_module


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SwarmEnv, dict]]:
    """Two finalized batched rounds, and the CIDs each corruption case targets."""
    from chainml.services.chain import LocalChain

    data_dir = tmp_path_factory.mktemp("verify-history")
    chain = LocalChain(data_dir)
    env = SwarmEnv(data_dir, chain.up().url)
    try:
        rows = env.run(SwarmConfig(nodes=6, rounds=2, mode="batched"))
        assert [r["status"] for r in rows] == ["finalized", "finalized"]
        ledger, store = env.ledger(), env.store()
        targets = {}
        for version in (1, 2):
            v = ledger.version(version)
            targets[f"weights{version}"] = onchain_to_str(*v.weights)
            targets[f"metrics{version}"] = onchain_to_str(*v.metrics)
            (batch,) = ledger.batches(version)
            leaves = onchain_to_str(*batch.leaves)
            targets[f"leaves{version}"] = leaves
            _, signed = decode_leaves(store.get(leaves))
            c = signed[0].commitment
            targets[f"update{version}"] = onchain_to_str(c.update_digest, c.update_codec)
            targets[f"table{version}"] = table_ref(ledger, version).cid
        store.close()
        yield env, targets
    finally:
        chain.down()


def _copy_with_corruption(env: SwarmEnv, target: Path, cid: str | None) -> Path:
    """The run's IPFS data under ``target``, with one byte of ``cid``'s block flipped."""
    shutil.copytree(env.data_dir / EMBEDDED_SUBDIR, target / EMBEDDED_SUBDIR)
    if cid is not None:
        store = EmbeddedStore(target / EMBEDDED_SUBDIR)
        path, offset, length = store.blocks.block_file(to_cid_bytes(cid))
        store.close()
        with open(path, "r+b") as f:
            f.seek(offset + length // 2)
            byte = f.read(1)
            f.seek(offset + length // 2)
            f.write(bytes([byte[0] ^ 0x01]))
    return target


def _verify(env: SwarmEnv, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(
        [
            "--data-dir", str(data_dir), "verify", "--rpc-url", env.rpc_url,
            "--deployments", str(env.data_dir / "deployments.json"),
        ]
    )  # fmt: skip
    return code, capsys.readouterr().out


def test_untouched_history_verifies(history, tmp_path: Path, capsys) -> None:
    env, _ = history
    code, out = _verify(env, _copy_with_corruption(env, tmp_path, None), capsys)
    assert code == 0, out
    assert "verify: OK (2 finalized versions" in out


@pytest.mark.parametrize(
    ("target", "version", "what"),
    [
        ("weights2", 2, "weights"),
        ("weights1", 1, "weights"),
        ("metrics2", 2, "metrics"),
        ("leaves1", 1, "leaves of batch"),
        ("update2", 2, "update of node"),
        ("table1", 1, "reputationTable"),
        ("table2", 2, "reputationTable"),
    ],
)
def test_one_changed_byte_is_reported_under_its_version(
    history, tmp_path: Path, capsys, target: str, version: int, what: str
) -> None:
    env, targets = history
    cid = targets[target]
    code, out = _verify(env, _copy_with_corruption(env, tmp_path, cid), capsys)
    assert code == 1, out
    flat = " ".join(out.split())  # the console wraps long lines
    assert f"version {version} (round {version})" in flat, out
    report = flat[flat.index(f"version {version} (round {version})") :]
    assert report.split(" CORRUPT BLOCK ")[1].startswith(f"stored block corrupt: {what}"), out
    assert cid in report and "aggregate mismatch" not in flat, out
    if version == 1:
        assert "version 2 (round 2)" not in flat  # never reported under a later version


def test_wave1_verify_missed_a_corrupt_final_version(
    history, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the fix: the corrupted final weights passed, and a corrupt update was blamed
    on the aggregate."""
    env, targets = history
    old = wave1_module("chainml/swarm/verify.py", "wave1_verify")
    from chainml.protocol.verify import verify_history

    ledger = env.ledger()
    from_block = ledger.tx.w3.eth.block_number * 0  # every event since genesis
    for target, old_ok in (("weights2", True), ("update2", False)):
        case = _copy_with_corruption(env, tmp_path / target, targets[target])
        store = EmbeddedStore(case / EMBEDDED_SUBDIR)
        try:
            before = old.verify_history(Wave1Ledger.of(ledger), store, from_block)
            after = verify_history(ledger, store, from_block)
        finally:
            store.close()
        assert all(c.ok for c in before) is old_ok  # wave 1: OK, or the wrong culprit
        if not old_ok:
            assert "recomputed weights" in before[-1].detail  # blamed the aggregate
        assert not after[-1].ok and after[-1].kind == "corrupt"
        assert after[-1].fault_cid == targets[target] and after[-1].version == 2
