"""Tiny model architectures for a Cortex-M4 (256 KB RAM, 1 MB flash), by string id.

Every model is ``TinyNet(body, head)``: a ``nn.Sequential`` body and a final ``nn.Linear`` head, so
parameter names are stable (``body.<i>.weight`` ..., ``head.weight``, ``head.bias``) and the head,
which devices re-fit locally and never send, is simply the ``head.*`` parameters. The module is
only a stateless template: weights live in plain ``dict[str, Tensor]`` objects and are applied
with ``torch.func.functional_call``.

Resource estimates (documented approximations, CMSIS-NN conventions):

* int8 flash: 1 byte per weight, 4 bytes (int32) per bias, 4 bytes (float32) per output-channel
  scale.
* inference RAM: int8 activations in two ping-pong buffers, so the peak is the largest
  ``input + output`` of any layer.
* adaptation RAM (one SGD step, float32): weights + gradients (8 bytes per parameter) + every
  activation kept for back-propagation, times the mini-batch size (1 for online learning).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from chainml.errors import BudgetError, MetaLearningError

Params = dict[str, torch.Tensor]
LossKind = Literal["mse", "cross_entropy"]

MCU_RAM_BYTES = 256 * 1024
MCU_FLASH_BYTES = 1024 * 1024


class GlobalAvgPool1d(nn.Module):
    """Mean over time; written as a plain reduction so ``vmap`` needs no special rule."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1)


class TinyNet(nn.Module):
    """A body followed by a linear head; spiking models also carry their plasticity ``rule``
    (parameters the forward pass does not use: the device's learning rule reads them)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear, rule: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.head = head
        if rule is not None:
            self.rule = rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _mlp(sizes: list[int], out: int) -> TinyNet:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return TinyNet(nn.Sequential(*layers), nn.Linear(sizes[-1], out))


def _cnn_vibration() -> TinyNet:
    body = nn.Sequential(
        nn.Conv1d(1, 8, kernel_size=7, stride=2),
        nn.ReLU(),
        nn.Conv1d(8, 16, kernel_size=5, stride=2),
        nn.ReLU(),
        nn.Conv1d(16, 16, kernel_size=5, stride=2),
        nn.ReLU(),
        GlobalAvgPool1d(),
    )
    return TinyNet(body, nn.Linear(16, 2))


def _snn(inputs: int, hidden: int, out: int, steps: int | None = None) -> TinyNet:
    """Two LIF layers read out by their spike rate (chainml.neuro.lif), plus the meta-learned
    plasticity rule of every layer (chainml.neuro.rule); ``steps`` repeats a static input as a
    constant current, otherwise the input is already ``(T, channels)``."""
    # torch-only modules, no cycle
    from chainml.neuro.lif import LIF, RepeatInTime, SpikeRate
    from chainml.neuro.rule import PlasticityRule

    encode: list[nn.Module] = [] if steps is None else [RepeatInTime(steps)]
    first: list[nn.Module] = [nn.Linear(inputs, hidden), *encode]
    body = nn.Sequential(*first, LIF(), nn.Linear(hidden, hidden), LIF(), SpikeRate())
    layers = [
        (f"body.{i}", m.in_features, m.out_features, True)
        for i, m in enumerate(body)
        if isinstance(m, nn.Linear)
    ]
    rule = PlasticityRule([*layers, ("head", hidden, out, False)], out)
    return TinyNet(body, nn.Linear(hidden, out), rule)


def _init_snn(params: Params, seed: int) -> Params:
    from chainml.neuro.rule import init_plastic  # torch-only module, no cycle

    return init_plastic(params, seed)


def _mlp_events(steps: int, channels: int, hidden: int, out: int) -> TinyNet:
    """The MLP baseline for ``(T, channels)`` event inputs: flatten, then the usual MLP."""
    mlp = _mlp([steps * channels, hidden, hidden], out)
    return TinyNet(nn.Sequential(nn.Flatten(-2), *mlp.body), mlp.head)


@dataclass(frozen=True)
class Architecture:
    """A registry entry: how to build the template and what it consumes and produces."""

    arch_id: str
    build: Callable[[], TinyNet]
    input_shape: tuple[int, ...]
    loss: LossKind
    finish_init: Callable[[Params, int], Params] | None = None
    """Completes the seeded default init (parameters of no Linear/Conv layer, gains)."""


ARCHITECTURES: dict[str, Architecture] = {
    a.arch_id: a
    for a in (
        Architecture("mlp-sine", lambda: _mlp([1, 40, 40], 1), (1,), "mse"),
        Architecture("mlp-meter", lambda: _mlp([8, 32, 32], 1), (8,), "mse"),
        Architecture("cnn-vibration", _cnn_vibration, (1, 128), "cross_entropy"),
        Architecture("mlp-coldchain", lambda: _mlp([24, 32, 32], 2), (24,), "cross_entropy"),
        Architecture("mlp-digits", lambda: _mlp([64, 64, 64], 5), (64,), "cross_entropy"),
        # Spiking models (chainml.neuro): the gasdrift event task and sine (8 time steps).
        Architecture("snn-gasdrift", lambda: _snn(8, 64, 1), (16, 8), "mse", _init_snn),
        Architecture("mlp-gasdrift", lambda: _mlp_events(16, 8, 40, 1), (16, 8), "mse"),
        Architecture("snn-sine", lambda: _snn(1, 40, 1, steps=8), (1,), "mse", _init_snn),
    )
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor as the storage layer validates it."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ModelSpec:
    """Ordered parameter names/shapes, head membership and MCU resource estimates."""

    arch_id: str
    input_shape: tuple[int, ...]
    output_dim: int
    loss: LossKind
    params: tuple[ParamSpec, ...]
    head: tuple[str, ...]
    activations: tuple[int, ...]  # element counts: input, then every layer's output

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def body(self) -> tuple[ParamSpec, ...]:
        """Body parameters in spec order: the coordinates of a sparse update."""
        return tuple(p for p in self.params if p.name not in self.head)

    @property
    def num_params(self) -> int:
        return sum(p.numel for p in self.params)

    @property
    def body_size(self) -> int:
        return sum(p.numel for p in self.body)

    @property
    def flash_bytes_int8(self) -> int:
        total = 0
        for p in self.params:
            is_bias = len(p.shape) == 1
            total += 4 * p.numel if is_bias else p.numel + 4 * p.shape[0]
        return total

    @property
    def ram_inference_bytes(self) -> int:
        a = self.activations
        return max(x + y for x, y in itertools.pairwise(a))

    def ram_adapt_bytes(self, batch: int = 1) -> int:
        """float32 weights + gradients + stored activations for ``batch`` samples."""
        return 8 * self.num_params + 4 * batch * sum(self.activations)

    @property
    def ram_adapt_step_bytes(self) -> int:
        """One online (batch-1) adaptation step, as TinyMetaFed devices run it."""
        return self.ram_adapt_bytes(1)

    def check_budget(
        self, ram_bytes: int = MCU_RAM_BYTES, flash_bytes: int = MCU_FLASH_BYTES, batch: int = 1
    ) -> None:
        """Raise :class:`BudgetError` if the model does not fit the device."""
        need = {
            "flash": (self.flash_bytes_int8, flash_bytes),
            "inference RAM": (self.ram_inference_bytes, ram_bytes),
            "adaptation RAM": (self.ram_adapt_bytes(batch), ram_bytes),
        }
        for what, (used, limit) in need.items():
            if used > limit:
                raise BudgetError(
                    f"{self.arch_id} needs {used} bytes of {what}, the device has {limit}; "
                    "pick a smaller architecture or batch"
                )

    def validate(self, params: Mapping[str, torch.Tensor]) -> None:
        """Raise :class:`MetaLearningError` unless ``params`` match names, shapes and dtype."""
        if tuple(params) != self.names:
            raise MetaLearningError(
                f"{self.arch_id}: expected params {self.names}, got {tuple(params)}"
            )
        for p in self.params:
            t = params[p.name]
            if tuple(t.shape) != p.shape or t.dtype != torch.float32:
                got = f"{t.dtype}{tuple(t.shape)}"
                raise MetaLearningError(
                    f"{self.arch_id}: {p.name} must be float32{p.shape}, got {got}"
                )


class Model:
    """A functional model: a stateless template plus its spec."""

    def __init__(self, arch: Architecture) -> None:
        self.arch = arch
        self.module = arch.build().requires_grad_(False)
        self.spec = _make_spec(arch, self.module)

    def __call__(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, dict(params), (x,))

    def features(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The body's output (the head's input)."""
        body = {k.removeprefix("body."): v for k, v in params.items() if k.startswith("body.")}
        return functional_call(self.module.body, body, (x,))

    def init(self, seed: int) -> Params:
        """Deterministic init from ``seed`` (PyTorch's default Linear/Conv scheme:
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases)."""
        gen = torch.Generator().manual_seed(int(seed))
        named = dict(self.module.named_parameters())
        out: Params = {}
        for name, tensor in named.items():
            weight = named.get(f"{name.rsplit('.', 1)[0]}.weight")
            if weight is None:  # not a layer's: finish_init sets it
                out[name] = torch.zeros(tensor.shape)
                continue
            fan_in = math.prod(weight.shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            out[name] = (torch.rand(tensor.shape, generator=gen) * 2 - 1) * bound
        if self.arch.finish_init is not None:
            out = self.arch.finish_init(out, seed)
        return out


def _make_spec(arch: Architecture, module: TinyNet) -> ModelSpec:
    sizes = [math.prod(arch.input_shape)]

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        sizes.append(out[0].numel())

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with torch.no_grad():
        out = module(torch.zeros(1, *arch.input_shape))
    for h in handles:
        h.remove()
    params = tuple(ParamSpec(n, tuple(p.shape)) for n, p in module.named_parameters())
    head = tuple(n for n, _ in module.named_parameters() if n.startswith("head."))
    return ModelSpec(
        arch.arch_id, arch.input_shape, out.shape[-1], arch.loss, params, head, tuple(sizes)
    )


@cache
def get_model(arch_id: str) -> Model:
    """The (cached, stateless) functional model for an architecture id."""
    try:
        return Model(ARCHITECTURES[arch_id])
    except KeyError:
        raise MetaLearningError(
            f"unknown architecture {arch_id!r}; choose one of {sorted(ARCHITECTURES)}"
        ) from None


def model_spec(arch_id: str) -> ModelSpec:
    return get_model(arch_id).spec
