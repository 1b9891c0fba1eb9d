"""One simulated device's round, as a picklable job a worker process runs.

The device fetches the meta-weights by CID (verified by the store), checks they fit its budget,
adapts on this round's local samples, stores its sparse int8 update on IPFS and signs the
EIP-712 commitment. Everything is a function of the job, so a resumed round recomputes the
exact same update and CID. A device that cannot do the round reports why; it never raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Literal

from eth_account import Account

from chainml.chain.eip712 import Commitment, SignedCommitment, sign_commitment, to_fixed
from chainml.device.cost import adaptation_macs, check_fits, int8_download_bytes, round_cost
from chainml.device.profile import get_profile
from chainml.errors import ChainMLError
from chainml.meta.adapt import AdaptConfig
from chainml.meta.federated import NodeConfig, node_step
from chainml.meta.models import Params, get_model
from chainml.meta.tasks import Task, TaskFamily, get_family
from chainml.storage.cid import cid_str, cid_to_onchain
from chainml.storage.store import Store, shared_store
from chainml.swarm.attacks import LabelFlippedTask, poison_update
from chainml.swarm.payloads import decode_weights, encode_update

COMMITMENT_WIRE_BYTES = 9 * 32 + 65
"""ABI-encoded commitment fields plus the 65-byte signature, as a device would transmit them."""

Status = Literal["ok", "refused", "failed"]
MAX_GRAD_NORM = 5.0
"""Devices clip each online gradient: one large-amplitude sample must not blow up the step."""


@dataclass(frozen=True)
class NodeJob:
    index: int
    key: bytes
    round: int
    base_version: int
    weights_cid: str
    store_spec: str
    data_dir: str
    task: str
    arch_id: str
    seed: int
    node: NodeConfig
    profile: str
    domain_separator: bytes
    nonce: int
    attack: str | None = None
    sybil_leader: int | None = None


@dataclass(frozen=True)
class NodeOutcome:
    index: int
    node: str
    status: Status
    error: str | None = None
    signed: SignedCommitment | None = None
    update_cid: str | None = None
    num_samples: int = 0
    loss_before: float | None = None
    loss_after: float | None = None
    bytes_down: int = 0
    bytes_up: int = 0
    energy_j: float = 0.0
    airtime_s: float = 0.0
    seconds: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Host time spent on (adaptation, IPFS, signing): how the round's wall time splits."""


def node_config(
    *, shots: int, queries: int, steps: int, inner_lr: float, top_fraction: float, round_id: int
) -> NodeConfig:
    """The TinyMetaFed node step the swarm runs: online Reptile adaptation (every setting spelled
    out, so a change of the engine's defaults cannot silently change the protocol), the head kept
    local, the top-P% of the body delta sent as int8."""
    adapt = AdaptConfig(steps=steps, inner_lr=inner_lr, online=True, max_grad_norm=MAX_GRAD_NORM)
    return NodeConfig(
        adapt=adapt, shots=shots, queries=queries, top_fraction=top_fraction, granularity="param",
        rule="reptile", round=round_id,
    )  # fmt: skip


@cache
def _family(name: str) -> TaskFamily:
    return get_family(name)


_weights_cache: dict[tuple[str, str], Params] = {}


def _weights(store: Store, cid: str, arch_id: str) -> Params:
    key = (cid, arch_id)
    if key not in _weights_cache:
        _weights_cache.clear()  # one round's weights at a time
        _weights_cache[key] = decode_weights(store.get(cid), arch_id)
    return _weights_cache[key]


def _local_task(job: NodeJob) -> Task:
    """The data the device trains on: its own task, poisoned or borrowed by an attacker."""
    family = _family(job.task)
    if job.attack == "sybil" and job.sybil_leader is not None:
        return family.task(job.seed, job.sybil_leader, "train")  # one operator, one update
    task = family.task(job.seed, job.index, "train")
    return LabelFlippedTask(task) if job.attack == "label_flip" else task


def _claimed_base(job: NodeJob) -> int:
    if job.attack != "stale":
        return job.base_version
    return job.base_version - 1 if job.base_version > 0 else job.base_version + 1


def run_node(job: NodeJob) -> NodeOutcome:
    """The device's round; failures become an outcome with a status and a message."""
    address = Account.from_key(job.key).address
    try:
        profile = get_profile(job.profile)
        check_fits(profile, job.arch_id)
    except ChainMLError as exc:
        return NodeOutcome(job.index, address, "refused", error=str(exc))
    try:
        t0 = time.perf_counter()
        store = shared_store(job.store_spec, job.data_dir)
        params = _weights(store, job.weights_cid, job.arch_id)
        t1 = time.perf_counter()
        model = get_model(job.arch_id)
        result = node_step(model, params, _local_task(job), job.node)
        update = result.update
        if job.attack is not None:
            update = poison_update(job.attack, update, job.seed, job.round, job.index)
        t2 = time.perf_counter()
        payload = encode_update(update)
        update_cid = store.put(payload)
        t3 = time.perf_counter()
        digest, codec = cid_to_onchain(update_cid)
        commitment = Commitment(
            round=job.round - 1 if job.attack == "replay" else job.round,
            node=address,
            base_version=_claimed_base(job),
            update_digest=digest,
            update_codec=codec,
            num_samples=result.num_examples,
            loss_before=to_fixed(result.metrics["loss_before"]),
            loss_after=to_fixed(result.metrics["loss_after"]),
            nonce=job.nonce,
        )
        signed = sign_commitment(job.key, commitment, job.domain_separator)
        seconds = (t2 - t1, (t1 - t0) + (t3 - t2), time.perf_counter() - t3)
    except Exception as exc:  # a device that fails is data, not a crash of the whole round
        return NodeOutcome(job.index, address, "failed", error=f"{type(exc).__name__}: {exc}")
    macs = adaptation_macs(
        job.arch_id,
        steps=job.node.adapt.steps,
        samples_per_step=1,
        eval_samples=2 * job.node.queries,
    )
    cost = round_cost(
        profile,
        macs,
        bytes_down=int8_download_bytes(job.arch_id),
        bytes_up=len(payload) + COMMITMENT_WIRE_BYTES,
    )
    return NodeOutcome(
        index=job.index,
        node=address,
        status="ok",
        signed=signed,
        update_cid=cid_str(update_cid),
        num_samples=result.num_examples,
        loss_before=result.metrics["loss_before"],
        loss_after=result.metrics["loss_after"],
        bytes_down=cost.bytes_down,
        bytes_up=cost.bytes_up,
        energy_j=cost.energy_j,
        airtime_s=cost.airtime_s,
        seconds=seconds,
    )
