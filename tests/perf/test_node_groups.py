"""Simulated devices computed in canonical groups: same bits in every executor and chunking,
a device alone equals the one-device path, and adversaries keep it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from eth_account import Account

from chainml.chain.eip712 import domain_separator
from chainml.chain.keys import dev_node_account
from chainml.meta.federated import NodeConfig, node_step
from chainml.meta.models import get_model
from chainml.meta.tasks import get_family
from chainml.protocol.payloads import decode_version, encode_update
from chainml.storage.store import EMBEDDED, shared_store
from chainml.swarm.executor import InlineExecutor, LocalPoolExecutor, job_groups
from chainml.swarm.node_job import NODE_GROUP, NodeJob, group_of, node_config, run_node, run_nodes
from chainml.swarm.services import genesis_weights

SEPARATOR = domain_separator(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


def make_jobs(data_dir: Path, count: int, round_id: int = 3) -> list[NodeJob]:
    weights, arch = genesis_weights("sine", 0)
    cid = str(shared_store(EMBEDDED, str(data_dir)).put(weights))
    return [
        NodeJob(
            index=i,
            key=bytes(dev_node_account(i, "chainml-swarm-0").key),
            round=round_id,
            base_version=0,
            weights_cid=cid,
            store_spec=EMBEDDED,
            data_dir=str(data_dir),
            task="sine",
            arch_id=arch,
            seed=0,
            node=node_config(round_id),
            profile="nrf52840-ble",
            domain_separator=SEPARATOR,
            nonce=0,
        )
        for i in range(count)
    ]


def fingerprint(outcomes: list) -> list[tuple]:  # type: ignore[type-arg]
    """Everything a device reports that the chain or the metrics see, bit for bit."""
    return [
        (o.index, o.node, o.status, o.error, o.update_cid, o.signed, o.loss_before, o.loss_after,
         o.bytes_up, o.bytes_down, o.energy_j)
        for o in outcomes
    ]  # fmt: skip


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[NodeJob]:
    jobs = make_jobs(tmp_path_factory.mktemp("groups"), 2 * NODE_GROUP + 7)
    # One refused device and one adversary inside the first group.
    jobs[3] = dataclasses.replace(jobs[3], profile="no-such-board")
    jobs[5] = dataclasses.replace(jobs[5], attack="sign_flip")
    return jobs


@pytest.fixture(scope="module")
def inline(jobs: list[NodeJob]) -> list:  # type: ignore[type-arg]
    return list(InlineExecutor().map(run_node, jobs))


def test_groups_are_canonical_blocks_of_the_fleet(jobs: list[NodeJob]) -> None:
    groups = job_groups(run_node, jobs)
    assert groups is not None
    assert groups[0] == [i for i in range(NODE_GROUP) if i != 5]
    assert [5] in groups  # the adversary runs alone
    assert sorted(i for g in groups for i in g) == list(range(len(jobs)))
    assert group_of(jobs[0]) != group_of(dataclasses.replace(jobs[0], round=4))


def test_pool_gives_the_inline_bits_whatever_its_chunking(jobs: list[NodeJob], inline) -> None:  # type: ignore[no-untyped-def]
    assert [o.status for o in inline].count("ok") == len(jobs) - 1
    assert inline[3].status == "refused"
    pool = LocalPoolExecutor(workers=2, chunk_size=1)
    try:
        assert fingerprint(list(pool.map(run_node, jobs))) == fingerprint(inline)
        pool.chunk_size = 3
        assert fingerprint(list(pool.map(run_node, jobs[1:])))[NODE_GROUP:] == fingerprint(
            inline[NODE_GROUP + 1 :]
        )
    finally:
        pool.close()


def test_a_group_is_the_same_whichever_jobs_surround_it(jobs: list[NodeJob], inline) -> None:  # type: ignore[no-untyped-def]
    second = [j for j in jobs if NODE_GROUP <= j.index < 2 * NODE_GROUP]
    assert fingerprint(run_nodes(second)) == fingerprint(inline[NODE_GROUP : 2 * NODE_GROUP])
    # Reversed job order: same groups, same bits, results still in job order.
    backwards = list(InlineExecutor().map(run_node, list(reversed(jobs))))
    assert fingerprint(backwards) == fingerprint(list(reversed(inline)))


def test_a_device_alone_and_an_adversary_take_the_one_device_path(
    jobs: list[NodeJob], inline
) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    job = jobs[0]
    version = decode_version(shared_store(EMBEDDED, job.data_dir).get(job.weights_cid))
    config = NodeConfig(recipe=version.recipe, round=job.node.round)
    task = get_family("sine").task(0, job.index, "train")
    alone = node_step(get_model(job.arch_id), version.params, task, config)
    outcome = run_node(job)
    assert outcome.status == "ok"
    stored = shared_store(EMBEDDED, job.data_dir).get(outcome.update_cid)
    assert stored == encode_update(alone.update)  # the old per-device bits
    assert outcome.node == Account.from_key(job.key).address
    # In its group the same device computes batched bits: deterministic, but not the same
    # rounding (this is what makes the grouping part of the simulation's definition).
    assert inline[0].update_cid != outcome.update_cid
    assert fingerprint([run_node(jobs[5])]) == fingerprint([inline[5]])
