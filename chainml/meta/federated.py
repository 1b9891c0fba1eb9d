"""TinyMetaFed-style federated meta-learning: the node step, aggregation and a simulation.

Node side (after Ren et al. 2023, "TinyMetaFed: Efficient Federated Meta-Learning for TinyML",
arXiv:2307.06822): a node receives the meta-weights and

* reconstructs its head locally (partial local reconstruction, FedRecon: Singhal et al. 2021): a
  closed-form ridge fit whose sufficient statistics accumulate online, one sample at a time;
  the head is never sent and the server's head is never updated;
* adapts with the shared :func:`adapt` (its settings, including gradient clipping against
  over-adaptation, come from :class:`~chainml.meta.adapt.AdaptConfig`; ``online=True`` makes
  every gradient step use one sample);
* reports the top-P% of its body update as an int8 :class:`SparseUpdate`. The update is the
  Reptile delta ``phi - theta`` or, as in FedMeta (Chen et al. 2018, arXiv:1802.07876), the
  negative first-order or second-order MAML meta-gradient of its query loss.

The Flower-like contract is ``MetaClient.fit(params, config) -> (update, num_examples,
metrics)``. Server side: the mean of the dequantized dense deltas, summed in a fixed order in
float64, is applied with plain SGD (``theta += lr * delta``, the Reptile outer step) or with
server Adam (FedAdam, Reddi et al. 2021), using only element-wise float32 numpy operations, so
every machine computes the same bits. The aggregation rule is a swappable callable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch.func import grad, vmap

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig, adapt, loss_fn
from chainml.meta.models import Model, ModelSpec, Params, get_model
from chainml.meta.sparse import (
    Granularity,
    SparseUpdate,
    dense_update_bytes,
    flatten_body,
    sparsify,
    unflatten_body,
)
from chainml.meta.tasks import Task, TaskFamily, stack_episodes
from chainml.meta.tasks.base import task_rng


def _default_node_adapt() -> AdaptConfig:
    return AdaptConfig(steps=1, inner_lr=0.01, head_refit="ridge", max_grad_norm=1.0)


@dataclass(frozen=True)
class NodeConfig:
    """What a node does in one round; ``round`` selects its local data draw."""

    adapt: AdaptConfig = field(default_factory=_default_node_adapt)
    shots: int = 10
    queries: int = 10
    top_fraction: float = 0.1
    granularity: Granularity = "param"
    rule: Literal["reptile", "fomaml", "maml"] = "maml"
    round: int = 0


@dataclass(frozen=True)
class NodeResult:
    update: SparseUpdate
    num_examples: int
    metrics: dict[str, float]


def to_params(params: Mapping[str, torch.Tensor | np.ndarray], spec: ModelSpec) -> Params:
    """float32 torch tensors from arrays or tensors (what the storage layer hands over)."""
    out = {
        k: (v.detach() if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v)))
        for k, v in params.items()
    }
    spec.validate(out)
    return out


def node_steps(
    model: Model, params: Mapping[str, torch.Tensor], tasks: Sequence[Task], config: NodeConfig
) -> list[NodeResult]:
    """Several nodes' rounds at once (``vmap`` over nodes); each result equals what
    :func:`node_step` computes for that node alone, up to float rounding of batched kernels.

    Metrics are query-set losses right after head reconstruction (``loss_before``) and after
    adaptation (``loss_after``), on samples the update did not adapt on.
    """
    spec = model.spec
    theta = to_params(params, spec)
    ep = stack_episodes([t.episode(config.shots, config.queries, draw=config.round) for t in tasks])
    body = [p.name for p in spec.body]

    def one(
        p: Params, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor
    ) -> tuple[Params, torch.Tensor, torch.Tensor]:
        def outer(q: Params) -> tuple[torch.Tensor, tuple[Params, torch.Tensor]]:
            phi = adapt(model, q, xs, ys, config.adapt)
            loss = loss_fn(model, phi, xq, yq)
            return loss, (phi, loss)

        if config.rule == "maml":
            g, (phi, after) = grad(outer, has_aux=True)(p)
            delta = {k: -g[k] for k in body}
        else:
            phi = adapt(model, p, xs, ys, config.adapt)
            after = loss_fn(model, phi, xq, yq)
            if config.rule == "reptile":
                delta = {k: phi[k] - p[k] for k in body}
            else:
                g = grad(lambda q: loss_fn(model, q, xq, yq))(phi)
                delta = {k: -g[k] for k in body}
        start = adapt(model, p, xs, ys, replace(config.adapt, steps=0))
        return delta, loss_fn(model, start, xq, yq), after

    deltas, before, after = vmap(one, in_dims=(None, 0, 0, 0, 0))(
        theta, ep.x_support, ep.y_support, ep.x_query, ep.y_query
    )
    n = int(ep.x_support.shape[1])
    results = []
    for i in range(len(tasks)):
        flat = flatten_body({k: v[i] for k, v in deltas.items()}, spec)
        update = sparsify(flat, spec.arch_id, config.top_fraction, config.granularity)
        metrics = {
            "loss_before": float(before[i]),
            "loss_after": float(after[i]),
            "num_samples": float(n),
            "bytes": float(update.nbytes()),
        }
        results.append(NodeResult(update, n, metrics))
    return results


def node_step(
    model: Model, params: Mapping[str, torch.Tensor], task: Task, config: NodeConfig
) -> NodeResult:
    """One node's round (see :func:`node_steps`): what a simulated device runs."""
    return node_steps(model, params, [task], config)[0]


class MetaClient:
    """A simulated device holding one task (one node = one task)."""

    def __init__(self, family: TaskFamily, arch_id: str, seed: int, node_index: int) -> None:
        self.model = get_model(arch_id)
        self.task = family.task(seed, node_index, "train")

    def fit(
        self, params: Mapping[str, torch.Tensor | np.ndarray], config: NodeConfig
    ) -> tuple[SparseUpdate, int, dict[str, float]]:
        r = node_step(self.model, params, self.task, config)
        return r.update, r.num_examples, r.metrics


Aggregator = Callable[[Sequence[np.ndarray], Sequence[int]], np.ndarray]


def mean_aggregate(
    deltas: Sequence[np.ndarray], num_examples: Sequence[int] | None = None, weighted: bool = False
) -> np.ndarray:
    """Mean of dense deltas, accumulated in float64 in the given order, returned as float32.

    Element-wise IEEE additions in a fixed order give the same bits on every machine (unlike
    ``np.sum``, whose pairwise/SIMD blocking is an implementation detail). Inputs are not
    modified.
    """
    if not deltas:
        raise MetaLearningError("cannot aggregate zero updates")
    w = [float(n) for n in num_examples] if weighted and num_examples else [1.0] * len(deltas)
    acc = np.zeros(deltas[0].shape, dtype=np.float64)
    for d, wi in zip(deltas, w, strict=True):
        acc = acc + np.float64(wi) * d.astype(np.float64)
    return (acc / np.float64(sum(w))).astype(np.float32)


def apply_update(
    meta_params: Mapping[str, torch.Tensor], arch_id: str, delta: np.ndarray, server_lr: float = 1.0
) -> Params:
    """Server step ``body += server_lr * delta`` in float32 (head unchanged); pure function."""
    spec = get_model(arch_id).spec
    theta = to_params(meta_params, spec)
    flat = flatten_body(theta, spec)
    if delta.shape != flat.shape or delta.dtype != np.float32:
        raise MetaLearningError(
            f"delta must be float32{flat.shape}, got {delta.dtype}{delta.shape}"
        )
    new_flat = np.add(
        flat, np.multiply(np.float32(server_lr), delta, dtype=np.float32), dtype=np.float32
    )
    body = unflatten_body(new_flat, spec)
    return {
        k: torch.from_numpy(body[k].copy()) if k in body else v.clone() for k, v in theta.items()
    }


@dataclass(frozen=True)
class AdamState:
    """Server-side Adam moments over the body (FedAdam, Reddi et al. ICLR 2021)."""

    m: np.ndarray
    v: np.ndarray
    b1_power: float = 1.0
    b2_power: float = 1.0

    @classmethod
    def zeros(cls, size: int) -> AdamState:
        return cls(np.zeros(size, np.float32), np.zeros(size, np.float32))


def adam_step(
    delta: np.ndarray,
    state: AdamState,
    lr: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[np.ndarray, AdamState]:
    """Adam on the aggregated delta (a pseudo-gradient pointing uphill of ``-delta``).

    Pure and bit-reproducible: only element-wise float32 numpy operations, each correctly
    rounded, and the bias-correction powers are carried as running products, not ``pow``.
    """
    f = np.float32
    m = np.add(np.multiply(f(b1), state.m), np.multiply(f(1 - b1), delta))
    v = np.add(np.multiply(f(b2), state.v), np.multiply(f(1 - b2), np.multiply(delta, delta)))
    b1p, b2p = state.b1_power * b1, state.b2_power * b2
    m_hat = np.divide(m, f(1 - b1p))
    v_hat = np.divide(v, f(1 - b2p))
    step = np.multiply(f(lr), np.divide(m_hat, np.add(np.sqrt(v_hat), f(eps))))
    return step.astype(np.float32), AdamState(m, v, b1p, b2p)


@dataclass(frozen=True)
class FederatedConfig:
    rounds: int = 1000
    nodes_per_round: int = 10
    population: int = 1000
    node: NodeConfig = field(default_factory=NodeConfig)
    server_lr: float = 1.0
    server_lr_final: float | None = None
    server_optimizer: Literal["sgd", "adam"] = "sgd"
    seed: int = 0
    init_seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.nodes_per_round <= self.population or self.rounds < 0:
            raise MetaLearningError(f"invalid federated config: {self}")

    def server_lr_at(self, r: int) -> float:
        end = self.server_lr if self.server_lr_final is None else self.server_lr_final
        return self.server_lr + (end - self.server_lr) * r / max(self.rounds, 1)

    def participants(self, r: int) -> list[int]:
        """Node ids of round ``r``, ascending (this order is the summation order)."""
        rng = task_rng(self.seed, 3, r)
        return sorted(rng.choice(self.population, self.nodes_per_round, replace=False).tolist())


@dataclass(frozen=True)
class RoundStats:
    round: int
    loss_before: float
    loss_after: float
    bytes_per_node: float


@dataclass
class FederatedResult:
    params: Params
    history: list[RoundStats]
    wall_time_s: float
    bytes_per_node_round: float
    dense_bytes_per_node_round: int

    @property
    def compression(self) -> float:
        return self.dense_bytes_per_node_round / self.bytes_per_node_round


def simulate_federated(
    family: TaskFamily,
    arch_id: str,
    config: FederatedConfig,
    init: Mapping[str, torch.Tensor] | None = None,
    aggregate: Aggregator = mean_aggregate,
) -> FederatedResult:
    """In-process federated meta-training (no chain, no IPFS): node steps, aggregate, apply."""
    model = get_model(arch_id)
    params = to_params(init, model.spec) if init is not None else model.init(config.init_seed)
    history: list[RoundStats] = []
    adam = AdamState.zeros(model.spec.body_size)
    t0 = time.perf_counter()
    for r in range(config.rounds):
        node_cfg = replace(config.node, round=r)
        tasks = [family.task(config.seed, i, "train") for i in config.participants(r)]
        results = node_steps(model, params, tasks, node_cfg)
        dense = [res.update.to_dense() for res in results]
        delta = aggregate(dense, [res.num_examples for res in results])
        lr = config.server_lr_at(r)
        if config.server_optimizer == "adam":
            delta, adam = adam_step(delta, adam, lr)
            lr = 1.0
        params = apply_update(params, arch_id, delta, lr)
        history.append(
            RoundStats(
                r,
                float(np.mean([res.metrics["loss_before"] for res in results])),
                float(np.mean([res.metrics["loss_after"] for res in results])),
                float(np.mean([res.metrics["bytes"] for res in results])),
            )
        )
    wall = time.perf_counter() - t0
    mean_bytes = float(np.mean([h.bytes_per_node for h in history])) if history else 0.0
    return FederatedResult(params, history, wall, mean_bytes, dense_update_bytes(arch_id))
