"""Meta-learned synaptic plasticity: a device adapts by running a local rule, not by backprop.

Differentiable plasticity (Miconi, Clune & Stanley, ICML 2018): every plastic synapse has a fixed
weight ``w`` and a plastic trace ``h`` that the device's learning rule changes, and the synapse
transmits ``w + alpha * h``. The per-synapse plasticity coefficient ``alpha`` and the per-synapse
learning rate ``eta`` are meta-parameters, learned in the outer loop together with ``w``
(:mod:`chainml.neuro.metatrain`).

The rule is three-factor (pre-synaptic eligibility, post-synaptic state, a broadcast modulator),
the form on-chip learning engines implement (Loihi: Davies et al. 2018), so supervised few-shot
calibration works with local signals only:

* readout synapses: ``dh = eta * e * pre`` where ``e = y - y_hat`` is the output error and
  ``pre`` the pre-synaptic spike rate (a delta rule, i.e. error-modulated Hebbian learning);
* hidden synapses: ``dh = eta * m_i * mean_t(psi_i(t) * xbar_j(t))`` with the pre-synaptic trace
  ``xbar`` (spikes low-pass filtered by the membrane decay), the post-synaptic pseudo-derivative
  ``psi`` of the membrane (the eligibility of e-prop: Bellec et al. 2020, Nature Communications
  11) and the modulator ``m = B e`` sent back through meta-learned feedback weights ``B`` (no
  weight transport, no backprop through time on the device);
* a bias is a synapse from an always-on input, so it is plastic too.

The support set is presented ``passes`` times; each pass accumulates the eligibilities over the
support samples, then writes ``h <- clip(decay * h + dh)`` at the chip's bit depth with stochastic
rounding (:class:`~chainml.neuro.chip.ChipState`). Everything carries an explicit leading task
dimension ``K`` (each device has its own traces), so a meta-batch runs as one batched program and
autograd differentiates the meta-loss through the whole rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from chainml.errors import MetaLearningError
from chainml.meta.models import Model, Params, get_model
from chainml.neuro.chip import FLOAT, ChipState
from chainml.neuro.lif import BETA, LIF, SURROGATE_SLOPE, THRESHOLD, RepeatInTime, lif_scan
from chainml.neuro.rule import rule_key

Traces = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PlasticityConfig:
    """How a device runs the rule: presentations of the support set, trace decay and range."""

    passes: int = 3
    decay: float = 1.0
    trace_clip: float = 1.0
    plastic: tuple[str, ...] = ("hidden", "head")

    def __post_init__(self) -> None:
        if self.passes < 0 or not 0 < self.decay <= 1 or self.trace_clip <= 0:
            raise MetaLearningError(f"invalid plasticity config: {self}")
        if not set(self.plastic) <= {"hidden", "head"}:
            raise MetaLearningError(f"plastic must name 'hidden' and/or 'head': {self.plastic}")


@dataclass(frozen=True)
class Layer:
    """One synaptic layer of the registered spiking model."""

    prefix: str  # parameter prefix, e.g. "body.0" or "head"
    inputs: int
    outputs: int
    spiking: bool  # followed by LIF neurons (False for the linear readout)
    repeat: int | None = None  # static input presented for this many steps


@dataclass
class Forward:
    """Outputs of one forward pass plus what the rule and the energy account need."""

    out: torch.Tensor  # (K, N, outputs)
    eligibility_inputs: list[tuple[torch.Tensor, torch.Tensor | None]] = field(
        default_factory=list
    )  # per layer: pre-synaptic trace or rate (with the bias input), post pseudo-derivative
    spikes: list[torch.Tensor] = field(default_factory=list)  # per spiking layer, (K, N, T, H)
    input_events: torch.Tensor | None = None  # (K,) input events per task


def _layers(model: Model) -> list[Layer]:
    """Read the layer structure off a registered ``snn-*`` template."""
    layers: list[Layer] = []
    pending: Layer | None = None
    repeat: int | None = None
    for i, m in enumerate(model.module.body):
        if isinstance(m, nn.Linear):
            pending = Layer(f"body.{i}", m.in_features, m.out_features, True)
        elif isinstance(m, RepeatInTime):
            repeat = m.steps
        elif isinstance(m, LIF) and pending is not None:
            layers.append(Layer(pending.prefix, pending.inputs, pending.outputs, True, repeat))
            pending, repeat = None, None
    head = model.module.head
    layers.append(Layer("head", head.in_features, head.out_features, False))
    if len(layers) < 2:
        raise MetaLearningError(f"{model.spec.arch_id} is not a spiking architecture")
    return layers


def _pre_trace(x: torch.Tensor) -> torch.Tensor:
    """Pre-synaptic spikes (K, N, T, I) low-pass filtered with the membrane decay, scaled so a
    constant rate r gives a trace of r."""
    out, acc = [], torch.zeros_like(x[:, :, 0])
    for t in range(x.shape[2]):
        acc = BETA * acc + (1.0 - BETA) * x[:, :, t]
        out.append(acc)
    return torch.stack(out, 2)


def _with_bias_input(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def pseudo_derivative(v: torch.Tensor) -> torch.Tensor:
    """The surrogate's slope at membrane ``v`` (what on-chip e-prop uses as post factor)."""
    return 0.5 * SURROGATE_SLOPE / (1.0 + SURROGATE_SLOPE * (v - THRESHOLD).abs()) ** 2


class PlasticSNN:
    """A registered spiking architecture plus per-synapse plasticity meta-parameters.

    Meta-parameters are the registered model's parameter dict (``get_model(arch_id).init``):
    the weights and, per layer, the rule's ``rule.alpha.<layer>`` and ``rule.log_eta.<layer>``
    (``(out, in + 1)``, the bias column last) and for hidden layers ``rule.feedback.<layer>``
    (``(out, model outputs)``), see :mod:`chainml.neuro.rule`. So a version file, an update
    and a server step carry the rule exactly like the weights.
    """

    def __init__(self, arch_id: str = "snn-gasdrift", config: PlasticityConfig | None = None):
        self.arch_id = arch_id
        self.model = get_model(arch_id)
        self.config = config or PlasticityConfig()
        self.layers = _layers(self.model)
        self.outputs = self.layers[-1].outputs

    def is_plastic(self, layer: Layer) -> bool:
        return ("hidden" if layer.spiking else "head") in self.config.plastic

    @property
    def plastic_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if self.is_plastic(layer)]

    def init(self, seed: int) -> Params:
        """Meta-parameters of a fresh run: the registered model's seeded init, which includes
        the rule (:func:`chainml.neuro.rule.init_plastic`)."""
        return self.model.init(seed)

    def zero_traces(self, params: Mapping[str, torch.Tensor], tasks: int) -> Traces:
        return {
            layer.prefix: torch.zeros(tasks, layer.outputs, layer.inputs + 1)
            for layer in self.plastic_layers
        }

    def forward(
        self,
        params: Mapping[str, torch.Tensor],
        traces: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        chip: ChipState,
    ) -> Forward:
        """Run the chip on inputs ``x`` shaped ``(K, N, *input_shape)`` with per-task traces."""
        k = x.shape[0]
        # Static inputs (K, N, features) get a time axis of one step (repeated below).
        pre = x.unsqueeze(2) if x.dim() == 3 else x
        fwd = Forward(out=torch.empty(0), input_events=pre.sum(dim=(1, 2, 3)))
        for layer in self.layers:
            w = torch.cat(
                [params[f"{layer.prefix}.weight"], params[f"{layer.prefix}.bias"][:, None]], 1
            )
            w = chip.program(w).expand(k, -1, -1)
            if self.is_plastic(layer):
                alpha = chip.program(params[rule_key("alpha", layer.prefix)])
                w = w + alpha * traces[layer.prefix]
            w = chip.read_synapses(w)
            if not layer.spiking:
                rate = _with_bias_input(pre.mean(dim=2))  # (K, N, H + 1)
                fwd.out = torch.einsum("kni,koi->kno", rate, w)
                fwd.eligibility_inputs.append((rate, None))
                break
            current = torch.einsum("knti,koi->knto", pre, w[..., :-1]) + w[:, None, None, :, -1]
            if layer.repeat is not None:
                current = current.expand(-1, -1, layer.repeat, -1)
            spikes, v = lif_scan(current, time_dim=2, state_hook=chip.membrane)
            if self.is_plastic(layer):
                trace_in = pre.expand(-1, -1, current.shape[2], -1)
                fwd.eligibility_inputs.append(
                    (_with_bias_input(_pre_trace(trace_in)), pseudo_derivative(v))
                )
            else:
                fwd.eligibility_inputs.append((pre, None))
            fwd.spikes.append(spikes)
            pre = spikes
        return fwd

    def rule(
        self,
        params: Mapping[str, torch.Tensor],
        traces: Mapping[str, torch.Tensor],
        fwd: Forward,
        y: torch.Tensor,
        chip: ChipState,
    ) -> Traces:
        """One application of the three-factor rule after a pass over ``(x, y)``."""
        cfg = self.config
        err = y - fwd.out  # (K, N, outputs): the broadcast error signal
        n = err.shape[1]
        new: Traces = {}
        for layer, (pre, psi) in zip(self.layers, fwd.eligibility_inputs, strict=True):
            if not self.is_plastic(layer):
                continue
            eta = torch.exp(params[rule_key("log_eta", layer.prefix)])
            if layer.spiking:
                fb = params[rule_key("feedback", layer.prefix)]
                mod = torch.einsum("kno,io->kni", err, fb)
                post = mod[:, :, None, :] * psi  # (K, N, T, H)
                elig = torch.einsum("knti,kntj->kij", post, pre) / (n * pre.shape[2])
            else:
                elig = torch.einsum("kno,kni->koi", err, pre) / n
            h = cfg.decay * traces[layer.prefix] + eta * elig
            new[layer.prefix] = chip.store_trace(h, cfg.trace_clip)
        return new

    def adapt(
        self,
        params: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        chip: ChipState | None = None,
        traces: Mapping[str, torch.Tensor] | None = None,
        passes: int | None = None,
    ) -> tuple[Traces, list[Forward]]:
        """The device's learning: ``passes`` presentations of the support set ``(K, N, ...)``,
        each followed by the rule; returns the new traces and each pass's forward."""
        chip = chip or ChipState(FLOAT, 0)
        h = dict(traces) if traces is not None else self.zero_traces(params, x.shape[0])
        history = []
        for _ in range(self.config.passes if passes is None else passes):
            fwd = self.forward(params, h, x, chip)
            h = self.rule(params, h, fwd, y, chip)
            history.append(fwd)
        return h, history

    def loss(
        self,
        params: Mapping[str, torch.Tensor],
        traces: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        chip: ChipState | None = None,
    ) -> tuple[torch.Tensor, Forward]:
        """Per-task mean squared error ``(K,)`` on ``(x, y)`` and the forward that produced it."""
        fwd = self.forward(params, traces, x, chip or ChipState(FLOAT, 0))
        return F.mse_loss(fwd.out, y, reduction="none").mean(dim=(1, 2)), fwd
