"""A spiking device's round in the swarm: the plasticity rule on the chip, the meta-gradient of
the loss after it, and the event trigger that decides whether the device sends at all.

This is what :func:`chainml.meta.federated.node_steps` runs when the version's recipe has
``spiking`` set, what the device protocol scores (:func:`device_protocol_loss`) and what the
bench's fleet scenarios run (:mod:`chainml.neuro.fleet`): one code path.

* **Adaptation** (:func:`device_adapt`) is the device's learning: ``passes`` presentations of the
  support set, each followed by the three-factor rule, on the simulated chip. It runs under
  ``torch.no_grad``: no autograd graph, no backprop on the device.
* **The node objective** is the query loss after that adaptation, with the chip's noise and bit
  depth (noise-injected meta-training). Its gradient with respect to the weights *and* the
  rule's ``alpha``, ``eta`` and feedback is the node's update, sparsified and int8 like any
  node's. Autograd differentiates through the rule; the rule itself computes no gradient.
* **Event-driven devices** (:func:`event_decision`): a device keeps the calibration of its last
  update (that round's published version and the traces the rule wrote then) and, each round,
  checks it on the round's labelled samples (one forward pass). Its trigger
  (:class:`~chainml.neuro.events.EventTrigger`) fires when the smoothed error exceeds the
  recipe's ratio times the settled level, or the device has been silent ``max_silent``
  rounds; only then does it fetch the new version, adapt, compute and send its update. The
  device's state is a function of its last committed round and that round's version (both on
  chain) and of its own task, so any process reconstructs the same decision.
* **Pooled updates** (:func:`held_rounds`): the device keeps the labelled samples it checked
  its error on, so the update it sends covers every round since its previous one (at most the
  recipe's ``update_memory`` rounds): the mean of one meta-gradient per round, at the version
  it fetched, each paid for in compute energy. Silent rounds then save the radio and the
  learning, not the data: a fleet whose devices send a fifth of the time and send only the
  round's gradient learns from a fifth of the samples, and that, not the stale calibrations
  (a calibration's loss does not grow over a few rounds), is what cost event-driven fleets
  their loss.

Every random draw of the chip (stochastic rounding, noise) comes from a generator seeded by the
device's task, the round and the purpose, so a device's bits do not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from chainml.errors import MetaLearningError
from chainml.meta.federated import NodeConfig, NodeResult, one_thread, to_params
from chainml.meta.models import Model, Params
from chainml.meta.recipe import Recipe, SpikingRecipe
from chainml.meta.sparse import flatten_params, sparsify
from chainml.meta.tasks import Episode, Task, stack_episodes
from chainml.meta.tasks.base import task_rng
from chainml.neuro.chip import ChipConfig, ChipState
from chainml.neuro.energy import adaptation_energy_j, inference_energy_j
from chainml.neuro.events import EventTrigger, TriggerConfig
from chainml.neuro.plasticity import Forward, PlasticityConfig, PlasticSNN, Traces

# Purposes of chip draws (part of each generator's seed).
OBJECTIVE, BEFORE, CALIBRATE, CHECK, EVAL = 1, 2, 3, 4, 5
SPLITS = {"train": 0, "eval": 1, "test": 2}
EVAL_CHUNK = 100
META_GRADIENT_FACTOR = 2.0
"""Energy of the meta-gradient's backward pass, in forward passes (the usual 2x estimate)."""


def plasticity_config(spiking: SpikingRecipe) -> PlasticityConfig:
    return PlasticityConfig(
        passes=spiking.passes, decay=spiking.trace_decay, trace_clip=spiking.trace_clip
    )


def chip_config(spiking: SpikingRecipe) -> ChipConfig:
    return ChipConfig(
        bits=spiking.chip_bits,
        synaptic_sigma=spiking.synaptic_sigma,
        membrane_sigma=spiking.membrane_sigma,
    )


def trigger_config(spiking: SpikingRecipe) -> TriggerConfig | None:
    if spiking.event_ratio is None:
        return None
    return TriggerConfig(
        ratio=spiking.event_ratio, smoothing=spiking.event_smoothing, settle=spiking.event_settle
    )


@cache
def plastic_net(arch_id: str, spiking: SpikingRecipe) -> PlasticSNN:
    """The plastic network of a spiking architecture under a recipe (cached, stateless)."""
    return PlasticSNN(arch_id, plasticity_config(spiking))


def spiking_of(recipe: Recipe) -> SpikingRecipe:
    if recipe.spiking is None:
        raise MetaLearningError("the recipe has no spiking settings")
    return recipe.spiking


def chip_seed(task: Task, round_id: int, purpose: int) -> int:
    """The seed of one device's chip draws in one round, for one purpose."""
    split = SPLITS.get(str(task.split), 3)
    rng = task_rng(task.seed, split, task.index, round_id, purpose)
    return int(rng.integers(0, 2**62))


def _one(ep: Episode) -> tuple[torch.Tensor, ...]:
    """An episode as a batch of one task."""
    return ep.x_support[None], ep.y_support[None], ep.x_query[None], ep.y_query[None]


def device_adapt(
    net: PlasticSNN,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    chip: ChipState,
) -> tuple[Traces, list[Forward]]:
    """The device's learning: the rule's passes over ``(x, y)`` (``(K, N, ...)``), with no
    autograd graph (what a chip with on-chip learning runs)."""
    with torch.no_grad():
        return net.adapt({k: v.detach() for k, v in params.items()}, x, y, chip)


# -- the node step -------------------------------------------------------------------------


def plastic_node_steps(
    model: Model, params: Mapping[str, torch.Tensor], tasks: Sequence[Task], config: NodeConfig
) -> list[NodeResult]:
    """Each node's update: minus the gradient of its query loss after the rule, one device at a
    time (each device's result is the same bits alone or in a group)."""
    with one_thread():
        recipe = config.recipe
        spiking = spiking_of(recipe)
        net = plastic_net(model.spec.arch_id, spiking)
        theta = to_params(params, model.spec)
        last = config.last_sent or (None,) * len(tasks)
        if len(last) != len(tasks):
            raise MetaLearningError(f"{len(last)} last-sent rounds for {len(tasks)} tasks")
        return [
            _node_step(net, theta, task, recipe, spiking, held_rounds(config.round, prev, spiking))
            for task, prev in zip(tasks, last, strict=True)
        ]


def held_rounds(round_id: int, last_sent: int | None, spiking: SpikingRecipe) -> list[int]:
    """The rounds whose samples a device's update covers: every round since its previous
    update (it kept the labelled samples it checked its error on), at most ``update_memory``
    rounds, this round last."""
    first = (
        round_id if last_sent is None else max(last_sent + 1, round_id - spiking.update_memory + 1)
    )
    return list(range(min(first, round_id), round_id + 1))


def _node_step(
    net: PlasticSNN,
    theta: Params,
    task: Task,
    recipe: Recipe,
    spiking: SpikingRecipe,
    rounds: Sequence[int],
) -> NodeResult:
    """Minus the mean meta-gradient over the episodes of ``rounds`` (the last is this
    round: its adaptation is the device's new calibration and gives the metrics)."""
    spec = net.model.spec
    chip = chip_config(spiking)
    p = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    per_round: list[tuple[torch.Tensor | None, ...]] = []
    forward_j = torch.zeros(1)
    for draw in rounds:
        ep = task.episode(recipe.support_shots, recipe.query_shots, draw=draw)
        xs, ys, xq, yq = _one(ep)
        state = ChipState(chip, [chip_seed(task, draw, OBJECTIVE)])
        traces, history = net.adapt(p, xs, ys, state)
        loss, fwd = net.loss(p, traces, xq, yq, state)
        per_round.append(torch.autograd.grad(loss.sum(), list(p.values()), allow_unused=True))
        with torch.no_grad():
            forward_j = forward_j + adaptation_energy_j(net, history) + inference_energy_j(net, fwd)
    round_id = rounds[-1]
    direction = {}
    for j, (k, v) in enumerate(p.items()):
        gs = [g[j] for g in per_round if g[j] is not None]
        mean = gs[0] if len(gs) == 1 else torch.stack(gs).mean(0) if gs else None
        direction[k] = -mean if mean is not None else torch.zeros_like(v)
    with torch.no_grad():
        zero = net.zero_traces(theta, 1)
        plain = ChipState(chip, [chip_seed(task, round_id, BEFORE)])
        before, _ = net.loss(theta, zero, xq, yq, plain)
    update = sparsify(flatten_params(direction, spec), spec.arch_id, recipe.top_fraction, "param")
    after = float(loss.detach()[0])
    metrics = {
        "loss_before": float(before[0]),
        "loss_maml": after,  # the rule is this family's inner loop
        "loss_after": after,
        "num_samples": float(xs.shape[1] * len(rounds)),
        "bytes": float(update.nbytes()),
        "compute_j": float(forward_j[0]) * (1.0 + META_GRADIENT_FACTOR),
    }
    return NodeResult(update, int(xs.shape[1]) * len(rounds), metrics)


# -- the device protocol -------------------------------------------------------------------


def device_protocol_loss(
    params: Mapping[str, torch.Tensor],
    arch_id: str,
    tasks: Sequence[Task],
    recipe: Recipe,
    *,
    shots: int,
    queries: int,
    draw: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The spiking device protocol under a version's recipe (see :func:`device_scores`)."""
    spiking = spiking_of(recipe)
    net = plastic_net(arch_id, spiking)
    p = to_params(params, net.model.spec)
    return device_scores(
        net, chip_config(spiking), p, tasks, shots=shots, queries=queries, draw=draw
    )


def device_scores(
    net: PlasticSNN,
    chip: ChipConfig,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence[Task],
    *,
    shots: int,
    queries: int,
    draw: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per task: the query loss after the device runs the rule on ``shots`` samples, and
    without adapting; plus the mean hidden spike density. On ``chip``, seeded per task."""
    after, before, density = [], [], []
    for lo in range(0, len(tasks), EVAL_CHUNK):
        chunk = tasks[lo : lo + EVAL_CHUNK]
        ep = stack_episodes([t.episode(shots, queries, draw=draw) for t in chunk])
        state = ChipState(chip, [chip_seed(t, draw, EVAL) for t in chunk])
        with torch.no_grad():
            traces, _ = device_adapt(net, params, ep.x_support, ep.y_support, state)
            loss, fwd = net.loss(params, traces, ep.x_query, ep.y_query, state)
            zero = net.zero_traces(params, len(chunk))
            loss0, _ = net.loss(params, zero, ep.x_query, ep.y_query, state)
        after.append(loss.numpy())
        before.append(loss0.numpy())
        density += [float(s.mean()) for s in fwd.spikes]
    return np.concatenate(after), np.concatenate(before), float(np.mean(density))


# -- event-driven devices ------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """What an event-driven device holds since its last update: the round it sent in and the
    meta-parameters that round's update was computed on (the version it adapted to)."""

    round: int
    params: Params


@dataclass(frozen=True)
class EventDecision:
    send: bool
    reason: str  # "first", "error", "silence" or "quiet"
    check_error: float  # the device's error check this round (its labelled samples, stale state)
    stale_loss: float  # the stale calibration's query loss (the simulator's score)
    check_j: float  # energy of the check (one forward pass)


def _calibrated(
    net: PlasticSNN, cal: Calibration, task: Task, recipe: Recipe, chip: ChipConfig
) -> Traces:
    ep = task.episode(recipe.support_shots, recipe.query_shots, draw=cal.round)
    xs, ys, _, _ = _one(ep)
    state = ChipState(chip, [chip_seed(task, cal.round, OBJECTIVE)])
    traces, _ = device_adapt(net, cal.params, xs, ys, state)
    return traces


def event_decision(
    arch_id: str, recipe: Recipe, task: Task, round_id: int, cal: Calibration | None
) -> EventDecision:
    """Does the device send this round? A device without a calibration always does; otherwise
    its trigger replays the checks of the rounds since its last update (the device's memory)
    and fires on error growth, or after ``max_silent`` silent rounds."""
    spiking = spiking_of(recipe)
    trigger_cfg = trigger_config(spiking)
    if cal is None or trigger_cfg is None:
        return EventDecision(True, "first" if cal is None else "always", 0.0, 0.0, 0.0)
    if cal.round >= round_id:
        raise MetaLearningError(f"calibration of round {cal.round} is not before {round_id}")
    net = plastic_net(arch_id, spiking)
    chip = chip_config(spiking)
    with torch.no_grad():
        traces = _calibrated(net, cal, task, recipe, chip)
        trigger = EventTrigger(trigger_cfg)
        fired = False
        for r in range(cal.round + 1, round_id + 1):
            ep = task.episode(recipe.support_shots, recipe.query_shots, draw=r)
            xs, ys, xq, yq = _one(ep)
            state = ChipState(chip, [chip_seed(task, r, CHECK)])
            # every labelled sample the device holds this round (it learns from none of them)
            x, y = torch.cat([xs, xq], 1), torch.cat([ys, yq], 1)
            error, fwd = net.loss(cal.params, traces, x, y, state)
            fired = trigger.observe(float(error[0])) or fired
        stale, _ = net.loss(cal.params, traces, xq, yq, state)
        check_j = float(inference_energy_j(net, fwd)[0])
    silent = round_id - cal.round
    reason = "error" if fired else "silence" if silent >= spiking.max_silent else "quiet"
    return EventDecision(reason != "quiet", reason, float(error[0]), float(stale[0]), check_j)
