"""The plasticity rule's meta-parameters as part of the registered spiking model.

A spiking model's meta-parameters are its weights *and* its learning rule, so the rule lives in
the model's parameter dict: every version file, update and server step carries it like any
weight, and the swarm learns it. Per plastic layer (``body.<i>`` for the LIF layers, ``head``
for the readout; in names the dot becomes an underscore):

* ``rule.alpha.<layer>`` and ``rule.log_eta.<layer>``, shaped ``(out, in + 1)`` (the bias column
  last): the per-synapse plasticity coefficient and log learning rate;
* ``rule.feedback.<layer>`` (hidden layers), shaped ``(out, model outputs)``: the fixed random
  feedback weights that carry the error to the layer (learned, not transported).

Only torch here: :mod:`chainml.meta.models` imports this module to build the ``snn-*``
templates, and :mod:`chainml.neuro.plasticity` reads the names back.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KINDS = ("alpha", "log_eta", "feedback")
INIT_GAIN = 3.0
"""Spiking layers' init scale: PyTorch's default Linear init times this, so neurons fire."""
INIT_ALPHA = 0.5
INIT_ETA = 0.3
FEEDBACK_SEED_OFFSET = 7919


def rule_key(kind: str, prefix: str) -> str:
    """The parameter name of ``kind`` for the layer ``prefix`` (``body.0`` -> ``body_0``)."""
    return f"rule.{kind}.{prefix.replace('.', '_')}"


class PlasticityRule(nn.Module):
    """Holds the rule's parameters for layers ``(prefix, inputs, outputs, spiking)``."""

    def __init__(self, layers: list[tuple[str, int, int, bool]], outputs: int) -> None:
        super().__init__()
        alpha, log_eta, feedback = nn.ParameterDict(), nn.ParameterDict(), nn.ParameterDict()
        for prefix, inputs, outs, spiking in layers:
            key = prefix.replace(".", "_")
            alpha[key] = nn.Parameter(torch.zeros(outs, inputs + 1))
            log_eta[key] = nn.Parameter(torch.zeros(outs, inputs + 1))
            if spiking:
                feedback[key] = nn.Parameter(torch.zeros(outs, outputs))
        self.alpha, self.log_eta, self.feedback = alpha, log_eta, feedback


def init_plastic(params: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Finish a spiking model's seeded init: spiking layers' weights times ``INIT_GAIN``,
    ``alpha`` 0.5, ``eta`` 0.3 and small random feedback (from its own seeded generator)."""
    out = dict(params)
    gen = torch.Generator().manual_seed(int(seed) + FEEDBACK_SEED_OFFSET)
    for name, value in params.items():
        if not name.startswith("rule."):
            continue
        kind, key = name.split(".")[1:]
        if kind == "alpha":
            out[name] = torch.full(value.shape, INIT_ALPHA)
        elif kind == "log_eta":
            out[name] = torch.full(value.shape, math.log(INIT_ETA))
        else:
            weight = f"{key.replace('_', '.')}.weight"
            out[weight] = params[weight] * INIT_GAIN
            out[name] = torch.randn(value.shape, generator=gen) / math.sqrt(value.shape[0])
    return out
