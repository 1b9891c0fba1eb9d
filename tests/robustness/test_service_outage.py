"""Anvil or IPFS going away mid-run: one clear line (a ChainMLError), and the run can resume.

Real services throughout: a js-ipfs node and an Anvil chain, each stopped (or SIGKILLed) by the
PID this test started, then started again on the same port.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from web3 import Web3

from chainml.errors import ChainError, ChainMLError, ServiceError
from chainml.services.chain import LocalChain
from chainml.services.ipfs import LocalIpfsNode
from chainml.services.process import ensure_port_free
from chainml.storage.kubo import KuboStore
from chainml.storage.store import StoreUnavailableError
from chainml.swarm.services import _checkpointer, chain_errors
from tests.robustness import procs


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    assert isinstance(exc, ChainMLError)
    return text


def test_ipfs_outage_is_one_line_and_the_store_resumes_on_restart(tmp_path):
    node = LocalIpfsNode(tmp_path / "ipfs")
    info = node.up()
    try:
        store = KuboStore(info.api_url, timeout=10)
        small = store.put(b"weights " * 100)
        large = store.put(os.urandom(600_000))  # a DAG: block/get, then cat
        node.down()
        calls = {
            "put": lambda: store.put(b"an update"),
            "get": lambda: store.get(small),
            "get a DAG": lambda: store.get(large),
            "has": lambda: store.has(small),
            "pin": lambda: store.pin(small),
            "pinned": store.pinned,
        }
        for name, call in calls.items():
            with pytest.raises(StoreUnavailableError) as caught:
                call()
            text = _one_line(caught.value)
            assert f"cannot reach the IPFS node at {info.api_url}" in text, name
            assert "chainml ipfs up" in text, name
        # the node comes back on the same port (its old connections may linger in TIME_WAIT)
        again = node.up(port=info.port)
        assert again.port == info.port
        assert store.get(small) == b"weights " * 100
        assert len(store.get(large)) == 600_000
    finally:
        node.down()


def test_chain_lost_mid_call_is_one_line(tmp_path):
    local = LocalChain(tmp_path / "data")
    info = local.up()
    try:
        w3 = Web3(Web3.HTTPProvider(info.url, request_kwargs={"timeout": 10}))
        with chain_errors(info.url):
            assert len(w3.eth.accounts) >= 5
        os.kill(info.pid, signal.SIGKILL)
        procs.wait_for(lambda: procs.read_proc(info.pid) is None or local.info() is None, 20,
                       "anvil to die")  # fmt: skip
        with pytest.raises(ChainError) as caught, chain_errors(info.url):
            w3.eth.accounts  # noqa: B018
        text = _one_line(caught.value)
        assert f"lost the connection to the chain at {info.url}" in text
        assert "rerun the same command to resume" in text
    finally:
        local.down()


def _port_released(port: int) -> bool:
    try:
        ensure_port_free(port, "the chain")
    except ServiceError:
        return False
    return True


def test_checkpoint_of_a_stopped_chain_fails_loudly(tmp_path: Path):
    """A run must not report a version as durable when the chain it saves is gone."""
    local = LocalChain(tmp_path / "data")
    info = local.up()
    try:
        checkpoint = _checkpointer(local, info.url)
        assert checkpoint() is True
        assert local.anvil_state.exists()
        os.kill(info.pid, signal.SIGKILL)
        procs.wait_for(lambda: local.info() is None, 20, "anvil to die")
        assert local.checkpoint() is False  # the plain call saves nothing, silently
        with pytest.raises(ServiceError) as caught:
            checkpoint()
        text = _one_line(caught.value)
        assert "stopped during the run" in text and "chainml chain up" in text
        # the killed process's listener can outlive its pid by a moment: wait for the port
        procs.wait_for(lambda: _port_released(info.port), 20, "the chain's port to be released")
        restarted = local.up(port=info.port)  # resume: the same port, the saved state
        assert restarted.port == info.port
        assert _checkpointer(local, restarted.url)() is True
    finally:
        local.down()


@pytest.mark.slow
def test_ipfs_killed_mid_run_is_one_line_and_the_run_resumes(tmp_path: Path):
    import subprocess
    import sys

    data_dir = tmp_path / "data"
    chain = LocalChain(data_dir)
    node = LocalIpfsNode(tmp_path / "ipfs")
    rpc = chain.up()
    ipfs = node.up()
    run_dir = tmp_path / "run"
    argv = [
        sys.executable, "-m", "chainml", "--data-dir", str(data_dir), "swarm", "run",
        "--nodes", "6", "--rounds", "2", "--workers", "1", "--rpc-url", rpc.url,
        "--ipfs", ipfs.api_url, "--run-dir", str(run_dir),
    ]  # fmt: skip
    try:
        victim = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        rounds = run_dir / "rounds.jsonl"
        procs.wait_for(
            lambda: (
                victim.poll() is not None
                or (rounds.exists() and len(rounds.read_text().splitlines()) >= 1)
            ),
            240,
            "round 1 to finish",
        )
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        os.kill(ipfs.pid, signal.SIGKILL)  # the IPFS node goes away mid-run
        _, stderr = victim.communicate(timeout=300)
        assert victim.returncode == 1, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        assert "cannot reach the IPFS node" in lines[0], lines
        assert len(rounds.read_text().splitlines()) < 2
        node.up(port=ipfs.port)  # back on the same port: the same command resumes
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        statuses = [json.loads(line)["status"] for line in rounds.read_text().splitlines()]
        assert statuses.count("finalized") == 2, statuses
    finally:
        node.down()
        chain.down()
