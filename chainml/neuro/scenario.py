"""Fleets of spiking devices on a data stream: event-driven updates and the regulated drift case.

Devices run batched (a leading device dimension, one set of plastic traces each); a per-device
decision (adapt or not, recalibrate or not) is a mask, and energy is charged only where the
device actually did the work. Every round's query loss is measured on fresh samples the device
did not learn from (the simulator's score, not something the device pays for).

* :func:`run_event_stream`: every round the device receives a few labelled samples. Without a
  trigger it adapts on them and sends an update every round; with one it first checks its error
  (one forward pass, charged) and adapts and sends only when the trigger fires.
* :func:`run_regulated_stream`: the device calibrates once on labelled samples, then only infers
  on unlabelled data; its environment changes abruptly at ``drift_round``. With a regulator, the
  device watches its energy and spike density and recalibrates when they leave their normal
  range; without one it keeps its stale calibration.
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
from chainml.neuro.events import EventTrigger, TriggerConfig
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
    error_triggered: np.ndarray | None = None  # (rounds, devices) the error trigger fired
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
def run_event_stream(
    net: PlasticSNN,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence[Task],
    config: StreamConfig,
    chip: ChipConfig,
    trigger: TriggerConfig | None = None,
    core: NeuroCore = LOIHI,
    buffer_rounds: int = 10,
) -> StreamResult:
    """Calibrate at round 0, then adapt every round (``trigger=None``) or on trigger only.

    An event-driven device defers its learning rather than dropping it: it keeps the labelled
    samples it has checked since its last update (at most ``buffer_rounds`` rounds of them; 10
    rounds of 10 event windows are 12.8 kB as int8 counts) and, when the trigger fires or the
    buffer is full, runs the rule on each buffered round in order, exactly as an
    always-updating device would have, then sends one update. It pays for every pass it runs,
    so what it saves is mostly radio.
    """
    if buffer_rounds < 1:
        raise MetaLearningError(f"buffer_rounds must be >= 1, got {buffer_rounds}")
    k, rounds = len(tasks), config.rounds
    state = ChipState(chip, config.seed)
    losses = np.zeros((rounds, k))
    updates = np.zeros((rounds, k), dtype=bool)
    compute = np.zeros((rounds, k))
    radio = np.zeros((rounds, k))
    send_j = send_energy_j(net, chip.bits, core)
    triggers = [EventTrigger(trigger) for _ in range(k)] if trigger is not None else []
    traces = net.zero_traces(params, k)
    episodes: list[Episode] = []
    learned = np.full(k, -1)  # last round each device has learned from
    by_error = np.zeros((rounds, k), dtype=bool)
    for r in range(rounds):
        ep = stack_episodes([t.episode(config.shots, config.queries, draw=r) for t in tasks])
        episodes.append(ep)
        if r == 0 or trigger is None:
            mask = torch.ones(k, dtype=torch.bool)
        else:
            check, fwd = net.loss(params, traces, ep.x_support, ep.y_support, state)
            compute[r] += inference_energy_j(net, fwd, core).numpy()
            fired = [trg.observe(float(e)) for trg, e in zip(triggers, check, strict=True)]
            full = r - learned >= buffer_rounds  # the buffer is full: learn now or lose data
            for trg, f, b in zip(triggers, fired, full, strict=True):
                if b and not f:
                    trg.updated()
            by_error[r] = fired
            mask = torch.tensor(np.array(fired) | full)
        m = _mask_np(mask)
        if m.any():
            first = max(int(learned[m].min()) + 1, r - buffer_rounds + 1, 0)
            for j in range(first, r + 1):
                due = m & (learned < j) & (j > r - buffer_rounds)
                if not due.any():
                    continue
                past = episodes[j]
                new, history = net.adapt(params, past.x_support, past.y_support, state, traces)
                traces = _where(torch.from_numpy(due), new, traces)
                compute[r] += np.where(due, adaptation_energy_j(net, history, core).numpy(), 0.0)
            learned[m] = r
            radio[r] += np.where(m, send_j, 0.0)
            updates[r] = m
        loss, _ = net.loss(params, traces, ep.x_query, ep.y_query, state)
        losses[r] = loss.numpy()
    return StreamResult(losses, updates, compute, radio, error_triggered=by_error)


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
        new, history = net.adapt(params, ep.x_support, ep.y_support, state)  # from scratch
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
