"""A fleet of spiking devices learning together, in one process: the swarm's rounds without the
chain, for the bench and the tests.

Each round runs exactly what a swarm round runs for a spiking recipe: every device's event
decision (:func:`~chainml.neuro.node.event_decision`), the senders' node step
(:func:`~chainml.meta.federated.node_steps`, which dispatches to the plasticity rule), the
recipe's aggregation strategy and the server step, and the same per-device cost (the device's
radio profile for the download and the upload, synaptic events for the compute). A device's
calibration is the round of its last update and the meta-parameters it adapted then, as the
swarm reads them off the chain; a sender's update covers the rounds since its previous update
(:func:`~chainml.neuro.node.held_rounds`). The loss a device delivers in a round is its query
loss: after a fresh adaptation if it sent, with its stale calibration if it stayed silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from chainml.aggregate.strategies import Contribution, strategy_for_recipe
from chainml.device.cost import int8_download_bytes, round_cost
from chainml.device.profile import get_profile
from chainml.errors import MetaLearningError
from chainml.meta.federated import NodeConfig, ServerState, node_steps, server_step, to_params
from chainml.meta.models import Params, get_model
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import encode_sparse
from chainml.meta.tasks import TaskFamily
from chainml.neuro.node import Calibration, event_decision
from chainml.swarm.node_job import COMMITMENT_WIRE_BYTES


@dataclass
class FleetResult:
    """Per-round, per-device records (rounds from 1) and the final meta-parameters."""

    params: Params
    losses: np.ndarray  # (rounds, devices): the loss each device delivered
    sent: np.ndarray  # (rounds, devices) bool
    energy_j: np.ndarray  # (rounds, devices): compute and radio
    radio_j: np.ndarray  # (rounds, devices)
    bytes: np.ndarray  # (rounds, devices): down plus up
    reasons: list[list[str]]

    def mean_loss(self, start: int = 1) -> float:
        return float(self.losses[start:].mean())

    def updates_sent(self, start: int = 1) -> int:
        return int(self.sent[start:].sum())


def run_fleet(
    family: TaskFamily,
    arch_id: str,
    recipe: Recipe,
    init: Mapping[str, torch.Tensor],
    *,
    rounds: int,
    devices: int,
    seed: int = 0,
    profile: str = "nrf52840-ble",
) -> FleetResult:
    """``devices`` devices (device ``i`` holds train task ``i``, as in the swarm) for rounds
    ``1..rounds`` from the meta-parameters ``init``."""
    if recipe.spiking is None or rounds < 1 or devices < 1:
        raise MetaLearningError("run_fleet needs a spiking recipe, rounds >= 1 and devices >= 1")
    model = get_model(arch_id)
    params = to_params(init, model.spec)
    state = ServerState.zeros(model.spec.num_params)
    strategy = strategy_for_recipe(recipe)
    hw = get_profile(profile)
    tasks = [family.task(seed, i, "train") for i in range(devices)]
    calibrations: dict[int, Calibration] = {}
    shape = (rounds, devices)
    losses, energy, radio, nbytes = (np.zeros(shape) for _ in range(4))
    sent = np.zeros(shape, dtype=bool)
    reasons: list[list[str]] = []
    for r in range(1, rounds + 1):
        decisions = [event_decision(arch_id, recipe, t, r, calibrations.get(i)) for i, t in
                     enumerate(tasks)]  # fmt: skip
        senders = [i for i, d in enumerate(decisions) if d.send]
        last = tuple(calibrations[i].round if i in calibrations else None for i in senders)
        config = NodeConfig(recipe, r, last)
        results = node_steps(model, params, [tasks[i] for i in senders], config)
        row = r - 1
        reasons.append([d.reason for d in decisions])
        for i, d in enumerate(decisions):
            losses[row, i], energy[row, i] = d.stale_loss, d.check_j
        contributions = []
        for i, res in zip(senders, results, strict=True):
            up = len(encode_sparse(res.update)) + COMMITMENT_WIRE_BYTES
            cost = round_cost(hw, 0, int8_download_bytes(arch_id), up)
            losses[row, i] = res.metrics["loss_after"]
            energy[row, i] += cost.energy_j + res.metrics["compute_j"]
            radio[row, i] = cost.radio_j
            nbytes[row, i] = cost.bytes_down + cost.bytes_up
            sent[row, i] = True
            calibrations[i] = Calibration(r, params)
            contributions.append(Contribution(f"device-{i}", res.update.to_dense(), 1))
        if contributions:  # a round nobody sent in closes without a new version
            delta = strategy.aggregate(contributions).delta
            params, state = server_step(params, arch_id, delta, state, recipe)
    return FleetResult(params, losses, sent, energy, radio, nbytes, reasons)
