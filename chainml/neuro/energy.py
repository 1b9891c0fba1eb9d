"""Energy of a neuromorphic device: synaptic events, neuron updates, plastic writes and radio.

A spiking chip spends energy per event, not per multiply: every spike that reaches a synapse is
one synaptic operation (SOP), every neuron integrates once per time step, and every learning
epoch writes the plastic synapses. The per-operation constants are Intel Loihi's, as published
(Davies et al. 2018, "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE Micro
38(1), Table 2: about 23.6 pJ per synaptic spike operation, 52 pJ per neuron update and 120 pJ
per synaptic (learning) update; quoted, not re-checked against the paper on this offline
machine); treat them as order-of-magnitude figures for a digital neuromorphic core. The radio
is the fleet's own model (:mod:`chainml.device.radio`, BLE by default), so radio savings are
counted exactly as for the MCU nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from chainml.device.radio import RADIOS, Radio
from chainml.errors import ConfigError
from chainml.neuro.plasticity import Forward, PlasticSNN

# Update messages carry a small header next to the traces: device id, round, bit depth, CRC.
UPDATE_HEADER_BYTES = 16


@dataclass(frozen=True)
class NeuroCore:
    """Per-operation energies of the spiking core (joules)."""

    name: str = "loihi-like"
    sop_j: float = 23.6e-12
    neuron_update_j: float = 52e-12
    synapse_update_j: float = 120e-12
    radio_name: str = "ble"

    @property
    def radio(self) -> Radio:
        try:
            return RADIOS[self.radio_name]
        except KeyError:
            raise ConfigError(
                f"unknown radio {self.radio_name!r}; known: {sorted(RADIOS)}"
            ) from None


LOIHI = NeuroCore()


def forward_ops(net: PlasticSNN, fwd: Forward) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task ``(synaptic ops, neuron updates)`` of one forward pass.

    A spike (or input event) into a layer costs one SOP per target neuron; every spiking neuron
    updates once per time step and sample.
    """
    sops = fwd.input_events * net.layers[0].outputs
    neurons = torch.zeros_like(sops)
    for layer, spikes, nxt in zip(net.layers, fwd.spikes, net.layers[1:], strict=False):
        sops = sops + spikes.sum(dim=(1, 2, 3)) * nxt.outputs
        neurons = neurons + spikes.shape[1] * spikes.shape[2] * layer.outputs
    return sops, neurons


def spike_density(net: PlasticSNN, fwd: Forward) -> torch.Tensor:
    """Per-task fraction of (neuron, time step, sample) slots with a spike, over hidden layers."""
    total = sum(s.sum(dim=(1, 2, 3)) for s in fwd.spikes)
    slots = sum(s[0].numel() for s in fwd.spikes)
    return total / slots


def inference_energy_j(net: PlasticSNN, fwd: Forward, core: NeuroCore = LOIHI) -> torch.Tensor:
    """Per-task compute energy of one forward pass."""
    sops, neurons = forward_ops(net, fwd)
    return sops * core.sop_j + neurons * core.neuron_update_j


def plastic_synapses(net: PlasticSNN) -> int:
    """Synapses (bias inputs included) the rule writes once per pass."""
    return sum(layer.outputs * (layer.inputs + 1) for layer in net.plastic_layers)


def adaptation_energy_j(
    net: PlasticSNN, history: list[Forward], core: NeuroCore = LOIHI
) -> torch.Tensor:
    """Per-task energy of running the rule: every pass's forward plus its plastic writes."""
    if not history:
        return torch.zeros(())
    per_pass = [inference_energy_j(net, f, core) for f in history]
    writes = len(history) * plastic_synapses(net) * core.synapse_update_j
    return sum(per_pass) + writes


def update_bytes(net: PlasticSNN, bits: int | None) -> int:
    """Size of one update message: the plastic traces at the chip's bit depth (int8 for a
    float chip) plus the header."""
    b = 8 if bits is None else bits
    return (plastic_synapses(net) * b + 7) // 8 + UPDATE_HEADER_BYTES


def send_energy_j(net: PlasticSNN, bits: int | None, core: NeuroCore = LOIHI) -> float:
    """Radio energy of sending one update."""
    return core.radio.send(update_bytes(net, bits)).energy_j
