"""Operational faults: dropouts, a gateway crash, storage outages, Anvil killed, stalls."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from chainml.chain.client import Ledger
from chainml.cli.main import main
from chainml.errors import IntegrityError, StorageError
from chainml.services.chain import LocalChain
from chainml.services.process import free_port
from chainml.storage.store import open_store
from chainml.swarm.config import SwarmConfig
from tests.swarm.conftest import SwarmEnv


def test_heavy_dropout_rounds_finalize_or_close_cleanly(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("dropout")
    rows = env.run(SwarmConfig(nodes=12, rounds=4, mode="batched", dropout=0.3))
    assert all(r["status"] in ("finalized", "closed") for r in rows)
    assert any(r["dropped"] > 0 for r in rows)
    assert env.ledger().current_version() == sum(r["status"] == "finalized" for r in rows)


def test_a_round_without_enough_commitments_closes_without_a_version(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("stall")
    rows = env.run(
        SwarmConfig(nodes=6, rounds=1, mode="relayed", dropout=0.9, min_commitments_fraction=1.0)
    )
    assert rows[0]["status"] == "closed" and rows[0]["version"] is None
    assert env.ledger().current_version() == 0


def test_gateway_crash_mid_batch_then_resume_gives_the_same_weights(
    make_env: Callable[[str], SwarmEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SwarmConfig(nodes=10, rounds=2, mode="batched", merkle_batch=4)
    reference = make_env("reference")
    reference.run(config)

    env = make_env("crash")
    real_post = Ledger.post_batches

    def crash_after_first(self: Ledger, round_id: int, batches: list, sender: object):  # type: ignore[no-untyped-def]
        """The gateway's first root lands, then it loses power before the others go out."""
        real_post(self, round_id, batches[:1], sender)  # type: ignore[arg-type]
        raise ConnectionError("gateway lost power mid-batch")

    monkeypatch.setattr(Ledger, "post_batches", crash_after_first)
    with pytest.raises(ConnectionError, match="mid-batch"):
        env.run(config)
    assert env.ledger().round_info(1).batch_count == 1
    monkeypatch.setattr(Ledger, "post_batches", real_post)
    env.run(config)
    assert env.version_cids() == reference.version_cids()


def test_ipfs_node_down_is_a_clear_error_within_the_timeout(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    env = make_env("ipfs-down")
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match=r"127\.0\.0\.1"):
        env.run(SwarmConfig(nodes=3, rounds=1, mode="relayed"), ipfs=dead)


def test_anvil_killed_and_restarted_from_state_loses_no_version(
    make_env: Callable[[str], SwarmEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env("anvil-kill")
    config = SwarmConfig(nodes=6, rounds=2, mode="relayed")
    env.run(config)
    before = env.version_cids()
    chain = LocalChain(env.data_dir)
    info = chain.info()
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    os.waitpid(info.pid, 0)  # Anvil is our child: reap it, so it is surely gone
    restarted = chain.up()
    assert restarted.pid != info.pid
    env.rpc_url = restarted.url
    assert env.version_cids() == before  # nothing finalized was lost
    rows = env.run(SwarmConfig(nodes=6, rounds=1, mode="relayed"), name="after-restart")
    assert rows[-1]["status"] == "finalized"
    assert env.ledger().current_version() == 3
    assert main(["--data-dir", str(env.data_dir), "verify"]) == 0, capsys.readouterr().out


def test_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    chain = LocalChain(tmp_path)
    chain.up()
    chain.down()
    chain.anvil_state.write_text(chain.anvil_state.read_text()[:100])
    with pytest.raises(Exception, match="corrupt"):
        chain.up()


def test_corrupt_bytes_in_storage_exclude_that_update_and_the_round_finalizes(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    from chainml.protocol.evidence import gather_round
    from chainml.swarm.executor import InlineExecutor
    from chainml.swarm.orchestrator import RoundTimes, Swarm
    from chainml.swarm.services import connect

    env = make_env("corrupt")
    services = connect(env.rpc_url, env.data_dir, "embedded", task="sine", seed=0)
    swarm = Swarm(
        SwarmConfig(nodes=6, rounds=1, mode="relayed"),
        services,
        env.data_dir / "run",
        InlineExecutor(),
    )
    swarm.ensure_registered()
    round_id = swarm.current_or_new_round()
    swarm.commit_phase(round_id, RoundTimes())
    victim = gather_round(services.ledger, services.store, round_id).updates[0]
    payload = services.store.get(victim.update_cid)
    # Flip one byte of that update wherever the store keeps it on disk (any layout).
    flipped = 0
    for path in (env.data_dir / "ipfs-embedded").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            at = data.find(payload)
            if at >= 0:
                corrupt = bytearray(data)
                corrupt[at + len(payload) // 2] ^= 0xFF
                path.write_bytes(bytes(corrupt))
                flipped += 1
    assert flipped == 1
    fresh = open_store("embedded", env.data_dir)  # a reader that never saw the good bytes
    with pytest.raises(IntegrityError, match=victim.update_cid):
        fresh.get(victim.update_cid)
    services.store = fresh
    swarm.s.store = fresh
    swarm.aggregator.store = fresh
    swarm.drive(round_id)
    rows = swarm.log.completed_rounds()
    assert rows[round_id]["status"] == "finalized"
    assert rows[round_id]["included"] == 5 and rows[round_id]["excluded"] == 1


@pytest.mark.slow
def test_ipfs_node_that_never_answers_times_out_with_a_clear_error(
    make_env: Callable[[str], SwarmEnv],
) -> None:
    import socket
    import time

    env = make_env("ipfs-slow")
    with socket.socket() as listener:  # accepts connections, never answers: a hung node
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        started = time.monotonic()
        with pytest.raises(StorageError, match="did not answer"):
            env.run(
                SwarmConfig(nodes=3, rounds=1, mode="relayed"),
                ipfs=f"http://127.0.0.1:{listener.getsockname()[1]}",
            )
        assert time.monotonic() - started < 90
