"""Operational faults: dropouts, a gateway crash, storage outages, Anvil killed, stalls."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from chainml.chain.client import Ledger
from chainml.cli.main import main
from chainml.errors import StorageError
from chainml.services.chain import LocalChain
from chainml.services.process import free_port
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
    real_post = Ledger.post_batch
    posted: list[int] = []

    def crash_after_first(self: Ledger, *args: object, **kwargs: object):
        if posted:
            raise ConnectionError("gateway lost power mid-batch")
        posted.append(1)
        return real_post(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Ledger, "post_batch", crash_after_first)
    with pytest.raises(ConnectionError, match="mid-batch"):
        env.run(config)
    assert env.ledger().round_info(1)["batchCount"] == 1
    monkeypatch.setattr(Ledger, "post_batch", real_post)
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
