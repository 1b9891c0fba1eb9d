"""Magnitude pruning of a float graph, unstructured and structured.

- **Unstructured**: in every body layer, the fraction ``sparsity`` of weights with the smallest
  magnitude becomes zero (Han et al. 2015). The ``.tflite`` (dense kernels in TFLM) still holds
  the zeros; the C build stores such a layer as a bitmask plus its non-zero values when that is
  smaller (:func:`chainml.mcu.codegen.weight_storage`), so flash shrinks at high sparsity.
- **Structured**: every hidden layer keeps the ``keep`` fraction of its output neurons or
  channels with the largest L2 norm (Li et al. 2017, "Pruning filters for efficient ConvNets"),
  and the next layer loses the matching inputs. The model really gets smaller.

The head is never pruned: devices re-fit it. Both variants are then fine-tuned from the
unpruned model with :func:`chainml.mcu.distill.distill` (masks held fixed), see
:mod:`chainml.mcu.compress`.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from chainml.errors import ConfigError
from chainml.mcu.graph import Graph, Layer


def unstructured(graph: Graph, sparsity: float) -> tuple[Graph, list[np.ndarray | None]]:
    """Zero the smallest-magnitude ``sparsity`` fraction of each body layer's weights."""
    if not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    layers: list[Layer] = []
    masks: list[np.ndarray | None] = []
    last = len(graph.layers) - 1
    for i, la in enumerate(graph.layers):
        if la.weight is None or i == last:
            layers.append(la)
            masks.append(None)
            continue
        k = round(sparsity * la.weight.size)
        order = np.argsort(np.abs(la.weight).reshape(-1), kind="stable")
        mask = np.ones(la.weight.size, dtype=bool)
        mask[order[:k]] = False
        mask = mask.reshape(la.weight.shape)
        layers.append(replace(la, weight=np.where(mask, la.weight, 0).astype(np.float32)))
        masks.append(mask)
    name = f"{graph.name}-unstructured{sparsity:g}"
    return replace(graph, name=name, layers=tuple(layers)), masks


def structured(graph: Graph, keep: float) -> Graph:
    """Keep the ``keep`` fraction (at least 2) of each hidden layer's largest-norm units."""
    if not 0 < keep <= 1:
        raise ConfigError(f"keep fraction must be in (0, 1], got {keep}")
    layers = list(graph.layers)
    weighted = [i for i, la in enumerate(layers) if la.weight is not None]
    for a, b in itertools.pairwise(weighted):
        la, nxt = layers[a], layers[b]
        assert la.weight is not None and la.bias is not None and nxt.weight is not None
        between = layers[a + 1 : b]
        if (
            la.kind == "conv"
            and nxt.kind == "dense"
            and not any(x.kind == "avgpool" for x in between)
        ):
            raise ConfigError("structured pruning needs a pooling layer between conv and dense")
        n = la.weight.shape[0]
        k = max(2, round(keep * n))
        norms = np.sqrt((la.weight.reshape(n, -1).astype(np.float64) ** 2).sum(axis=1))
        kept = np.sort(np.argsort(-norms, kind="stable")[:k])
        layers[a] = replace(la, weight=la.weight[kept].copy(), bias=la.bias[kept].copy())
        # The next layer's inputs are the kept units: dense columns, or conv input channels.
        w = nxt.weight[:, kept] if nxt.kind == "dense" else nxt.weight[:, :, kept]
        layers[b] = replace(nxt, weight=np.ascontiguousarray(w))
    return replace(graph, name=f"{graph.name}-structured{keep:g}", layers=tuple(layers))


def nonzero_weights(graph: Graph) -> int:
    return sum(int(np.count_nonzero(la.weight)) for la in graph.layers if la.weight is not None)
