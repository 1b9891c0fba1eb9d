"""One simulated device's round, as a picklable job a worker process runs.

The device fetches the version by CID (verified by the store), checks the model fits its budget,
follows the learning recipe that the version itself carries (so the device cannot drift from
what validators expect), computes its update on this round's local samples, stores the sparse
int8 update on IPFS and signs the EIP-712 commitment. Everything is a function of the job, so a
resumed round recomputes the exact same update and CID. A device that cannot do the round
reports why; it never raises.

Simulated devices run in canonical groups (:func:`group_of`): the honest devices of one round
whose fleet index falls in the same block of ``NODE_GROUP`` compute their steps together in one
``vmap`` (``node_steps``), about 30 times cheaper per device than one at a time. A batched
kernel's rounding depends on where a device sits in its batch, so the group is a function of
the job list alone (round, version, index block), never of the executor, its chunking or the
number of workers: the pool, Ray, an inline run and a resume all compute the same bits.
Adversaries keep the one-device path (their attacks wrap it).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from chainml.chain.eip712 import (
    Commitment,
    SignedCommitment,
    address_of_key,
    sign_commitment,
    to_fixed,
)
from chainml.device.cost import adaptation_macs, check_fits, int8_download_bytes, round_cost
from chainml.device.profile import get_profile
from chainml.errors import ChainMLError
from chainml.meta.federated import NodeConfig, NodeResult, node_step, node_steps
from chainml.meta.models import get_model
from chainml.meta.tasks import Task, TaskFamily, get_family
from chainml.neuro.node import Calibration, event_decision
from chainml.protocol.payloads import VersionFile, decode_version, encode_update
from chainml.storage.cid import cid_str, cid_to_onchain
from chainml.storage.fastcid import cid_binary
from chainml.storage.store import Store, StoreUnavailableError, shared_store
from chainml.swarm.attacks import AttackContext, attacked_node_step

COMMITMENT_WIRE_BYTES = 4 + 4 + 32 + 1 + 4 + 8 + 8 + 8 + 65
"""What a device transmits for its commitment, packed: round (u32), base version (u32), update
digest (32), codec (u8), samples (u32), losses (2 x u64), nonce (u64) and the 65-byte signature.
The node's address is not sent: the gateway recovers it from the signature."""

Status = Literal["ok", "refused", "failed", "silent"]
"""``silent``: an event-driven device whose error did not cross its trigger (no update)."""

NODE_GROUP = 256
"""Devices per canonical group (see the module doc). Changing it changes the simulated
devices' update bits (batched rounding), so it is fixed, not a tuning knob. At 256 a device's
step costs about a fifth of what it does alone (at 32, about a third more than at 256)."""


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
    colluders: tuple[int, ...] = ()
    """An adversary's fellow attackers (itself included), if the run tells it; colluders
    without it compute their statistics on seeded surrogate tasks."""
    calibration: tuple[int, str] | None = None
    """Event-driven spiking devices: the round of the node's last committed update and that
    round's base version CID (from chain); None if it never committed."""


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


def node_config(round_id: int) -> NodeConfig:
    """The job's config: only the round, which selects the device's data draw. The recipe is
    replaced by the base version's own when the device runs (see :func:`run_node`)."""
    return NodeConfig(round=round_id)


@cache
def _family(name: str) -> TaskFamily:
    return get_family(name)


_version_cache: dict[tuple[str, str], VersionFile] = {}


def _version(store: Store, cid: str, arch_id: str) -> VersionFile:
    key = (cid, arch_id)
    if key not in _version_cache:
        _version_cache.clear()  # one round's version at a time
        _version_cache[key] = decode_version(store.get(cid), arch_id)
    return _version_cache[key]


def _local_task(job: NodeJob) -> Task:
    """The device's own task (a sybil borrows its operator's: one operator, one update)."""
    family = _family(job.task)
    if job.attack == "sybil" and job.sybil_leader is not None:
        return family.task(job.seed, job.sybil_leader, "train")
    return family.task(job.seed, job.index, "train")


def _last_sent(job: NodeJob) -> int | None:
    """The round of the device's previous update (event-driven spiking devices pool the
    samples of the rounds since into their update), None if not known or never."""
    return job.calibration[0] if job.calibration is not None else None


def _claimed_base(job: NodeJob) -> int:
    if job.attack != "stale":
        return job.base_version
    return job.base_version - 1 if job.base_version > 0 else job.base_version + 1


def group_of(job: NodeJob) -> Hashable:
    """The canonical group of ``job``: jobs with equal groups compute in one batch."""
    if job.attack is not None:
        return ("alone", job.index)
    return ("honest", job.round, job.base_version, job.weights_cid, job.index // NODE_GROUP)


def run_node(job: NodeJob) -> NodeOutcome:
    """The device's round; failures become an outcome with a status and a message."""
    return run_nodes([job])[0]


def run_nodes(jobs: Sequence[NodeJob]) -> list[NodeOutcome]:
    """A group of devices' rounds (one :func:`group_of` value, as the executors pass them):
    the honest ones that fit their budget compute in one batch. Results in job order."""
    addresses = [address_of_key(job.key) for job in jobs]
    outcomes: dict[int, NodeOutcome] = {}
    runnable: list[int] = []
    for i, job in enumerate(jobs):
        try:
            check_fits(get_profile(job.profile), job.arch_id)
        except ChainMLError as exc:
            outcomes[i] = NodeOutcome(job.index, addresses[i], "refused", error=str(exc))
            continue
        silent = _silent(job, addresses[i])
        if silent is not None:
            outcomes[i] = silent
            continue
        runnable.append(i)
    # Canonical order inside the batch (a device's rounding depends on its place in it).
    batch = sorted((i for i in runnable if jobs[i].attack is None), key=lambda i: jobs[i].index)
    if len(batch) > 1 and len({group_of(jobs[i]) for i in batch}) == 1:
        results = _batched_steps([jobs[i] for i in batch])
        if results is not None:
            for i, (result, seconds) in zip(batch, results, strict=True):
                outcomes[i] = _finish(jobs[i], addresses[i], result, seconds)
    for i in runnable:
        if i not in outcomes:
            outcomes[i] = _run_one(jobs[i], addresses[i])
    return [outcomes[i] for i in range(len(jobs))]


_calibration_cache: dict[tuple[str, str], Calibration] = {}


def _silent(job: NodeJob, address: str) -> NodeOutcome | None:
    """An event-driven spiking device that stays silent this round: it only checked its stale
    calibration (one forward pass), so it sends, downloads and computes nothing else. None if
    the device sends (or is not event-driven)."""
    if job.attack is not None:
        return None
    try:
        store = shared_store(job.store_spec, job.data_dir)
        recipe = _version(store, job.weights_cid, job.arch_id).recipe
        if recipe.spiking is None or recipe.spiking.event_ratio is None:
            return None
        cal = None
        if job.calibration is not None:
            cal_round, cid = job.calibration
            if (cid, job.arch_id) not in _calibration_cache:
                if len(_calibration_cache) > 64:
                    _calibration_cache.clear()
                params = decode_version(store.get(cid), job.arch_id).params
                _calibration_cache[(cid, job.arch_id)] = Calibration(cal_round, params)
            cal = Calibration(cal_round, _calibration_cache[(cid, job.arch_id)].params)
        decision = event_decision(job.arch_id, recipe, _local_task(job), job.round, cal)
    except StoreUnavailableError:
        raise
    except Exception as exc:  # a device that fails is data, not a crash of the whole round
        return NodeOutcome(job.index, address, "failed", error=f"{type(exc).__name__}: {exc}")
    if decision.send:
        return None
    return NodeOutcome(
        job.index, address, "silent", loss_after=decision.stale_loss, energy_j=decision.check_j
    )


def _batched_steps(jobs: Sequence[NodeJob]) -> list[tuple[NodeResult, tuple[float, float]]] | None:
    """One ``node_steps`` call for a group; None to fall back to one device at a time (then
    every device reports its own failure)."""
    job = jobs[0]
    try:
        t0 = time.perf_counter()
        version = _version(shared_store(job.store_spec, job.data_dir), job.weights_cid, job.arch_id)
        t1 = time.perf_counter()
        config = NodeConfig(version.recipe, job.node.round, tuple(_last_sent(j) for j in jobs))
        tasks = [_local_task(j) for j in jobs]
        results = node_steps(get_model(job.arch_id), version.params, tasks, config)
        t2 = time.perf_counter()
    except StoreUnavailableError:
        raise  # the store is down: that says nothing about the devices, so the run stops
    except Exception:  # each device then fails (or not) on its own
        return None
    share = (t2 - t1) / len(jobs), (t1 - t0) / len(jobs)
    return [(result, share) for result in results]


def _run_one(job: NodeJob, address: str) -> NodeOutcome:
    """One device alone (an adversary, a group of one, or a group whose batch failed)."""
    try:
        t0 = time.perf_counter()
        store = shared_store(job.store_spec, job.data_dir)
        version = _version(store, job.weights_cid, job.arch_id)
        t1 = time.perf_counter()
        model = get_model(job.arch_id)
        last = (_last_sent(job),) if job.attack is None else ()  # attacks run their own tasks
        config = NodeConfig(version.recipe, job.node.round, last)
        if job.attack is None:
            result = node_step(model, version.params, _local_task(job), config)
        else:  # the attack wraps the honest computation (chainml.swarm.attacks)
            ctx = AttackContext(_family(job.task), job.seed, job.index, job.colluders)
            result = attacked_node_step(
                job.attack, model, version.params, _local_task(job), config, ctx
            )
        t2 = time.perf_counter()
    except StoreUnavailableError:
        raise  # the store is down: that says nothing about the device, so the run stops
    except Exception as exc:  # a device that fails is data, not a crash of the whole round
        return NodeOutcome(job.index, address, "failed", error=f"{type(exc).__name__}: {exc}")
    return _finish(job, address, result, (t2 - t1, t1 - t0))


def _finish(
    job: NodeJob, address: str, result: NodeResult, seconds: tuple[float, float]
) -> NodeOutcome:
    """Store the update, sign the commitment and cost the round (``seconds``: the device's
    share of host time spent adapting and fetching)."""
    try:
        store = shared_store(job.store_spec, job.data_dir)
        recipe = _version(store, job.weights_cid, job.arch_id).recipe
        t2 = time.perf_counter()
        payload = encode_update(result.update)
        update_cid = cid_binary(store.put(payload))
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
        timing = (seconds[0], seconds[1] + (t3 - t2), time.perf_counter() - t3)
    except StoreUnavailableError:
        raise
    except Exception as exc:  # a device that fails is data, not a crash of the whole round
        return NodeOutcome(job.index, address, "failed", error=f"{type(exc).__name__}: {exc}")
    # A spiking device's compute is counted in synaptic events (chainml.neuro.energy).
    macs = 0 if recipe.spiking is not None else adaptation_macs(
        job.arch_id,
        steps=recipe.inner_steps + 1,  # the inner step, then the meta-gradient's backward pass
        samples_per_step=recipe.support_shots + recipe.query_shots,
        eval_samples=recipe.query_shots,
    )  # fmt: skip
    cost = round_cost(
        get_profile(job.profile),
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
        energy_j=cost.energy_j + result.metrics.get("compute_j", 0.0),
        airtime_s=cost.airtime_s,
        seconds=timing,
    )


def warm_up() -> None:
    """Prepare a worker process for its jobs: import what validators' recomputations use and
    run the device step once on two throwaway sine tasks. torch's first ``vmap`` of ``grad``
    costs about a second (several under load), which a worker should pay when it starts, not
    inside a timed round. Nothing here changes any later result."""
    import chainml.protocol.review  # noqa: F401 - the other job a worker runs

    family = _family("sine")
    model = get_model(family.default_arch)
    tasks = [family.task(0, index, "train") for index in (0, 1)]
    node_steps(model, model.init(0), tasks, NodeConfig())


run_node.group_of = group_of  # type: ignore[attr-defined]
run_node.run_group = run_nodes  # type: ignore[attr-defined]
"""The executors' batching protocol (``chainml.swarm.executor``): group jobs canonically and
run each group with one call."""
