"""Spiking devices on a drifting data stream, with and without the meta-regulator.

Devices run batched (a leading device dimension, one set of plastic traces each); a per-device
decision (recalibrate or not) is a mask, and energy is charged only where the device actually
did the work. Every round's query loss is measured on fresh samples the device did not learn
from (the simulator's score, not something the device pays for). A recalibration is the
swarm's device adaptation (:func:`chainml.neuro.node.device_adapt`: the rule, no backprop).

:func:`run_regulated_stream`: the device calibrates once on labelled samples, then only infers
on unlabelled data; its environment changes abruptly at ``drift_round``. With a regulator, the
device watches its energy and spike density and recalibrates when they leave their normal
range; without one it keeps its stale calibration. (Event-driven updates in a learning fleet
are :mod:`chainml.neuro.fleet`, the swarm's own round.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from chainml.errors import MetaLearningError
from chainml.meta.tasks import Episode, Task, stack_episodes
from chainml.neuro.chip import ChipConfig, ChipState
from chainml.neuro.energy import (
    LOIHI,
    NeuroCore,
    adaptation_energy_j,
    inference_energy_j,
    send_energy_j,
    spike_density,
)
from chainml.neuro.node import device_adapt
from chainml.neuro.plasticity import PlasticSNN, Traces
from chainml.neuro.regulator import MetaRegulator, RegulatorConfig


@dataclass(frozen=True)
class StreamConfig:
    rounds: int = 30
    shots: int = 10  # labelled samples a device gets per round (or per recalibration)
    queries: int = 40  # fresh samples the simulator scores the device on
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 2 or self.shots < 1 or self.queries < 1:
            raise MetaLearningError(f"invalid stream config: {self}")


@dataclass
class StreamResult:
    """Per-round, per-device records: loss, updates sent and energy (joules)."""

    losses: np.ndarray  # (rounds, devices)
    updates: np.ndarray  # (rounds, devices) bool: adapted and sent an update this round
    compute_j: np.ndarray  # (rounds, devices)
    radio_j: np.ndarray  # (rounds, devices)
    densities: np.ndarray | None = None  # (rounds, devices) hidden spike density
    regulators: list[MetaRegulator] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return float(self.compute_j.sum() + self.radio_j.sum())

    def mean_loss(self, start: int = 1) -> float:
        return float(self.losses[start:].mean())

    def updates_sent(self, start: int = 1) -> int:
        return int(self.updates[start:].sum())


def _where(mask: torch.Tensor, new: Traces, old: Traces) -> Traces:
    return {k: torch.where(mask[:, None, None], new[k], old[k]) for k in old}


def _mask_np(mask: torch.Tensor) -> np.ndarray:
    return mask.numpy().astype(bool)


@torch.no_grad()
def run_regulated_stream(
    net: PlasticSNN,
    params: Mapping[str, torch.Tensor],
    before: Sequence[Task],
    after: Sequence[Task],
    drift_round: int,
    config: StreamConfig,
    chip: ChipConfig,
    regulator: RegulatorConfig | None = None,
    core: NeuroCore = LOIHI,
) -> StreamResult:
    """Calibrate at round 0 on ``before``; from ``drift_round`` on the inputs come from ``after``.

    Each round the device infers on the round's (unlabelled) samples, paying for it; the
    regulator, if any, reads that energy and spike density and may order a recalibration,
    which uses ``shots`` labelled samples of the current environment and takes effect from the
    next round.
    """
    if len(before) != len(after) or not 0 < drift_round < config.rounds:
        raise MetaLearningError("need as many drifted tasks as devices and 0 < drift < rounds")
    k, rounds = len(before), config.rounds
    state = ChipState(chip, config.seed)
    losses = np.zeros((rounds, k))
    updates = np.zeros((rounds, k), dtype=bool)
    compute = np.zeros((rounds, k))
    radio = np.zeros((rounds, k))
    densities = np.zeros((rounds, k))
    send_j = send_energy_j(net, chip.bits, core)
    regs = [MetaRegulator(regulator) for _ in range(k)] if regulator is not None else []
    traces = net.zero_traces(params, k)

    def recalibrate(mask: torch.Tensor, r: int, ep: Episode) -> None:
        nonlocal traces
        new, history = device_adapt(net, params, ep.x_support, ep.y_support, state)  # afresh
        traces = _where(mask, new, traces)
        m = _mask_np(mask)
        compute[r] += np.where(m, adaptation_energy_j(net, history, core).numpy(), 0.0)
        radio[r] += np.where(m, send_j, 0.0)
        updates[r] |= m

    for r in range(rounds):
        tasks = before if r < drift_round else after
        # The query samples are the round's unlabelled inputs; labels of the support samples
        # are requested only for a recalibration.
        ep = stack_episodes([t.episode(config.shots, config.queries, draw=r) for t in tasks])
        if r == 0:
            recalibrate(torch.ones(k, dtype=torch.bool), 0, ep)
        loss, fwd = net.loss(params, traces, ep.x_query, ep.y_query, state)
        losses[r] = loss.numpy()
        energy = inference_energy_j(net, fwd, core).numpy() / config.queries
        density = spike_density(net, fwd).numpy()
        compute[r] += energy * config.queries
        densities[r] = density
        if regs and r > 0:
            fire = [
                reg.observe(r, float(e), float(d))
                for reg, e, d in zip(regs, energy, density, strict=True)
            ]
            mask = torch.tensor(fire)
            if bool(mask.any()):
                recalibrate(mask, r, ep)
        elif regs:
            for reg, e, d in zip(regs, energy, density, strict=True):
                reg.observe(r, float(e), float(d))
    return StreamResult(losses, updates, compute, radio, densities, regs)


def rounds_to_recover(
    losses: np.ndarray,
    drift_round: int,
    target: float,
    tolerance: float = 0.1,
    statistic: str = "mean",
) -> int | None:
    """Rounds after the drift until the fleet's loss (``mean`` or ``median`` over devices) is
    back within ``tolerance`` of ``target`` (None if it never is). The median describes a
    typical device; the mean also charges the devices whose drift went unnoticed."""
    if statistic not in ("mean", "median"):
        raise MetaLearningError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    fleet = losses.mean(axis=1) if statistic == "mean" else np.median(losses, axis=1)
    for r in range(drift_round, len(fleet)):
        if fleet[r] <= (1 + tolerance) * target:
            return r - drift_round
    return None
