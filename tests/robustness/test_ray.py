"""The Ray executor: chunks of device jobs per task, on a Ray head that stays on loopback, with
versions bit-identical to the process pool's."""

from __future__ import annotations

import os

import pytest

from chainml.errors import ConfigError
from chainml.swarm.executor import RayExecutor, is_loopback_address, parse_executor
from tests.robustness import procs, ray_head


def test_executor_specs_parse_and_bad_ones_are_one_line_errors():
    assert parse_executor("pool") == ("pool", None)
    assert parse_executor("ray") == ("ray", None)
    assert parse_executor("ray:127.0.0.1:6379") == ("ray", "127.0.0.1:6379")
    assert parse_executor("ray:auto") == ("ray", "auto")
    for bad in ("dask", "pool:1.2.3.4:5", ""):
        with pytest.raises(ConfigError, match="unknown executor"):
            parse_executor(bad)
    assert is_loopback_address("127.0.0.1:6379") and is_loopback_address(None)
    assert not is_loopback_address("10.0.0.5:6379") and not is_loopback_address("auto")


def _square(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


@pytest.mark.slow
def test_ray_executor_batches_jobs_and_keeps_their_order(ray_driver_env):
    executor = RayExecutor(ray_driver_env.address)
    try:
        assert executor.cpus == 2
        size = executor.chunks_for(1_000)
        assert size == 125  # 8 tasks (4 per CPU) for 1,000 devices, not 1,000 tasks
        results = list(executor.map(_square, list(range(1_000))))
        assert [r[0] for r in results] == [x * x for x in range(1_000)]
        assert os.getpid() not in {r[1] for r in results}  # they ran in Ray workers
        # a chunk runs in one worker: consecutive jobs of one chunk share a PID
        assert all(len({r[1] for r in results[i : i + size]}) == 1 for i in range(0, 1_000, size))
        exposed = procs.exposed(ray_driver_env.proc.pid)  # workers exist now, too
        assert exposed == [], exposed
    finally:
        executor.close()


@pytest.mark.slow
def test_the_ray_head_listens_on_loopback_only(ray_head):
    pids = ray_head.pids()
    listening = procs.listeners(pids)
    assert listening, "the check must see the head's sockets"
    assert {item.process for item in listening} & {"gcs_server", "raylet"}
    assert [item for item in listening if not item.loopback] == []


@pytest.mark.slow
def test_without_the_loopback_setting_ray_listens_beyond_loopback(monkeypatch):
    """The run that must hurt: the same head without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0.

    Only meaningful on a machine with an outward interface (CI has one; so does this one).
    """
    plain = ray_head.ray_env

    def without(temp_dir):
        env = plain(temp_dir)
        env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        return env

    monkeypatch.setattr(ray_head, "ray_env", without)
    head = ray_head.start_head(num_cpus=1)
    try:
        exposed = procs.exposed(head.proc.pid)
    finally:
        assert ray_head.stop_head(head) == []
    assert exposed, "Ray kept to loopback without the setting: this check proves nothing here"


def _version_cids(data_dir, rpc_url) -> list[str]:
    from web3 import Web3

    from chainml.chain.client import Ledger
    from chainml.chain.deployments import deployments_path, load_deployments
    from chainml.storage.cid import onchain_to_str

    deployments = load_deployments(deployments_path(data_dir))
    assert deployments is not None
    ledger = Ledger.from_deployments(Web3(Web3.HTTPProvider(rpc_url)), deployments)
    return [onchain_to_str(*ledger.version(v).weights) for v in range(ledger.current_version() + 1)]


@pytest.mark.slow
def test_a_swarm_on_ray_gives_the_same_versions_as_on_the_pool(ray_driver_env, make_chain):
    from chainml.cli.swarm_cmd import run_swarm
    from chainml.swarm.config import SwarmConfig

    config = SwarmConfig(nodes=8, rounds=2, mode="batched", aggregation="trimmed")
    cids = {}
    for spec in ("pool", f"ray:{ray_driver_env.address}"):
        data_dir, chain = make_chain(spec.split(":")[0])
        rows = run_swarm(
            config,
            data_dir=data_dir,
            run_dir=data_dir / "runs" / "run",
            rpc_url=chain.url,
            ipfs="embedded",
            workers=2,
            show_progress=False,
            executor_spec=spec,
        )
        assert [r["status"] for r in rows] == ["finalized", "finalized"], rows
        cids[spec.split(":")[0]] = _version_cids(data_dir, chain.url)
        assert procs.exposed(ray_driver_env.proc.pid) == []  # workers that ran node jobs too
    assert len(cids["pool"]) == 3 and len(set(cids["pool"])) == 3
    assert cids["ray"] == cids["pool"]


@pytest.mark.slow
def test_ray_runs_device_groups_with_the_inline_bits(ray_driver_env, tmp_path):
    """Two canonical groups of devices (and an adversary alone) as Ray tasks, chunked however
    Ray's executor likes: every device's update, CID and signature equal an inline run's."""
    import dataclasses

    from chainml.swarm.executor import InlineExecutor
    from chainml.swarm.node_job import NODE_GROUP, run_node, warm_up
    from tests.perf.test_node_groups import fingerprint, make_jobs

    jobs = make_jobs(tmp_path, NODE_GROUP + 9)
    jobs[4] = dataclasses.replace(jobs[4], attack="sign_flip")
    inline = fingerprint(list(InlineExecutor().map(run_node, jobs)))
    hook = f"{warm_up.__module__}.{warm_up.__qualname__}"
    for chunk in (None, 1):
        executor = RayExecutor(ray_driver_env.address, chunk_size=chunk, warm_up=hook)
        try:
            assert fingerprint(list(executor.map(run_node, jobs))) == inline
        finally:
            executor.close()


LOCAL_RAY = """
import sys
from chainml.swarm.executor import RayExecutor
executor = RayExecutor(None, workers=2)
print(executor._temp_dir, flush=True)
assert list(executor.map(abs, list(range(-50, 0)))) == list(range(50, 0, -1))
executor.close()
"""


@pytest.mark.slow
def test_a_local_ray_instance_leaves_nothing_after_close(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCAL_RAY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    procs.wait_for(lambda: not procs.in_session(proc.pid), 30, "the local Ray processes to exit")
    assert not Path(out.strip()).exists()  # its temp dir (sessions, sockets, token) is gone
    assert list(home.iterdir()) == []  # nothing in HOME (no ~/.ray/auth_token)
