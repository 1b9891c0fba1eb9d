"""``chainml export --compress SPEC``: a smaller model for the same device, from a version.

A spec is one method with its amount, optionally followed by ``+int4``:

- ``unstructured:S``: magnitude pruning of the fraction ``S`` of every body layer's weights
  (the C build stores the survivors with a bitmask, :mod:`chainml.mcu.codegen`);
- ``structured:F``: the ``F`` fraction of every hidden layer's largest-norm units kept;
- ``distill:F``: a fresh student with every hidden width scaled by ``F``;
- ``int4``: the model as it is, its body's weights at 4 bits;
- ``...+int4``: any of the above with 4-bit body weights (quantization-aware training).

Every variant is then trained by :func:`chainml.mcu.distill.distill` from the exported version
(the teacher): the feature hint on the family's unlabelled training inputs plus the device
protocol's loss (ridge head re-fit with the version's recipe settings) on the family's training
tasks. The same code runs in ``chainml export`` and in ``bench/mcu.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainml.errors import ConfigError
from chainml.mcu import distill, prune
from chainml.mcu.evaluate import DeviceProtocol, family_inputs
from chainml.mcu.graph import Graph
from chainml.meta.tasks import TaskFamily

METHODS = ("unstructured", "structured", "distill", "int4")
DEFAULT_STEPS = 1500
TRAIN_INPUTS = 8192


@dataclass(frozen=True)
class Compression:
    """A parsed compression spec and its training budget."""

    method: str
    amount: float
    weight_bits: int = 8
    steps: int = DEFAULT_STEPS
    seed: int = 0

    @property
    def spec(self) -> str:
        head = "int4" if self.method == "int4" else f"{self.method}:{self.amount:g}"
        return head + ("+int4" if self.weight_bits == 4 and self.method != "int4" else "")

    def apply(self, graph: Graph, family: TaskFamily, protocol: DeviceProtocol) -> Graph:
        """The compressed, trained graph of ``graph`` (the exported version)."""
        inputs = family_inputs(family, graph, "train", TRAIN_INPUTS, self.seed)
        masks = None
        if self.method == "unstructured":
            pupil, masks = prune.unstructured(graph, self.amount)
        elif self.method == "structured":
            pupil = prune.structured(graph, self.amount)
        elif self.method == "distill":
            pupil = distill.student(graph, self.amount, self.seed)
        else:
            pupil = graph
        name = pupil.name if self.weight_bits == 8 else f"{pupil.name}-int{self.weight_bits}"
        return distill.distill(
            graph, pupil, inputs, steps=self.steps, seed=self.seed, masks=masks, name=name,
            family=family, protocol=protocol, weight_bits=self.weight_bits,
        )  # fmt: skip


def parse(spec: str, *, steps: int = DEFAULT_STEPS, seed: int = 0) -> Compression:
    """A :class:`Compression` from ``spec``; bad specs are a one-line ConfigError."""
    if steps < 1:
        raise ConfigError(f"compression needs at least 1 training step, got {steps}")
    head, plus, tail = spec.partition("+")
    if plus and tail != "int4":
        raise ConfigError(f"compression {spec!r}: only '+int4' may follow the method")
    bits = 4 if plus else 8
    if head == "int4":
        if plus:
            raise ConfigError(f"compression {spec!r}: int4 is already 4-bit")
        return Compression("int4", 1.0, 4, steps, seed)
    method, _, value = head.partition(":")
    if method not in METHODS:
        raise ConfigError(
            f"unknown compression {method!r}; use unstructured:S, structured:F, distill:F or "
            "int4, optionally followed by +int4"
        )
    try:
        amount = float(value)
    except ValueError:
        raise ConfigError(f"compression {spec!r} must look like structured:0.5") from None
    if method == "unstructured" and not 0 <= amount < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {amount}")
    if method in ("structured", "distill") and not 0 < amount <= 1:
        raise ConfigError(f"{method} keeps a width fraction in (0, 1], got {amount}")
    return Compression(method, amount, bits, steps, seed)
