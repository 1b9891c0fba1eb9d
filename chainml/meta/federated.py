"""Federated meta-learning with the one :class:`~chainml.meta.recipe.Recipe`: node and server step.

Node side (TinyMetaFed, Ren et al. 2023, with FedMeta's meta-gradient, Chen et al. 2018): a node
receives the meta-weights, draws this round's local samples from its own task, and computes minus
the gradient of the recipe's objective (MAML loss after the protocol's inner loop, plus the loss
after a closed-form ridge head re-fit). It reports the top-P% of that direction as an int8
:class:`SparseUpdate` over all parameters. The Flower-like contract is
``MetaClient.fit(params, config) -> (update, num_examples, metrics)``.

Server side: the aggregate of the dequantized directions goes through :func:`server_step`, Adam
(FedAdam, Reddi et al. 2021) or SGD, using only element-wise float32 numpy operations, so every
machine computes the same bits. Its state (:class:`ServerState`) is stored with each version.

:func:`simulate_federated` runs the same node step, aggregate and server step in one process
(no chain, no IPFS); the swarm runs exactly these functions through the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import grad, vmap

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig, adapt, loss_fn, refit_head
from chainml.meta.models import Model, ModelSpec, Params, get_model
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import (
    SparseUpdate,
    dense_update_bytes,
    flatten_params,
    sparsify_rows,
    unflatten_params,
)
from chainml.meta.tasks import Task, TaskFamily, stack_episodes


@dataclass(frozen=True)
class NodeConfig:
    """What a node does in one round: the recipe, and the round that selects its data draw."""

    recipe: Recipe = field(default_factory=Recipe)
    round: int = 0
    last_sent: tuple[int | None, ...] = ()
    """Per task, the round of the node's previous update (None: it never sent); only spiking
    recipes with ``update_memory`` use it (an update covers the rounds since). Empty: the
    node's samples of ``round`` only."""


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


def maml_adapt_config(recipe: Recipe) -> AdaptConfig:
    """The recipe's inner loop: plain full-batch SGD on every parameter (the MAML protocol's)."""
    return AdaptConfig(steps=recipe.inner_steps, inner_lr=recipe.inner_lr)


def device_adapt_config(recipe: Recipe) -> AdaptConfig:
    """What a deployed device runs on the samples it holds: the ridge head re-fit and no
    gradient step. Online learning adds samples, not steps: each new sample is folded into the
    head's ridge statistics (recursive least squares) and the head re-solved, so the body is
    never back-propagated on the device and one bad sample cannot blow the model up."""
    return AdaptConfig(steps=0, head_refit="ridge", ridge_lambda=recipe.ridge_lambda)


def node_objective(
    model: Model,
    params: Params,
    xs: torch.Tensor,
    ys: torch.Tensor,
    xq: torch.Tensor,
    yq: torch.Tensor,
    recipe: Recipe,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """MAML query loss plus ``ridge_weight`` times the device protocol's query loss."""
    maml = loss_fn(model, adapt(model, params, xs, ys, maml_adapt_config(recipe)), xq, yq)
    device = loss_fn(model, refit_head(model, params, xs, ys, recipe.ridge_lambda), xq, yq)
    return maml + recipe.ridge_weight * device, (maml, device)


def node_steps(
    model: Model,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence[Task],
    config: NodeConfig,
) -> list[NodeResult]:
    """Several nodes' rounds at once (``vmap`` over nodes); each equals :func:`node_step` for that
    node alone, up to float rounding of batched kernels.

    Metrics are query-set losses on samples the update did not adapt on: ``loss_before`` with the
    published weights as they are, ``loss_maml`` after the recipe's inner loop and ``loss_after``
    after the device's head re-fit.
    """
    if config.recipe.spiking is not None:  # spiking devices adapt by the plasticity rule
        from chainml.neuro.node import plastic_node_steps

        return plastic_node_steps(model, params, tasks, config)
    with one_thread():
        return _node_steps(model, params, tasks, config)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread: a device is one core, and a node's update must be the
    same bits in every process (resumes recompute it), which multi-threaded kernels do not
    guarantee for the ridge solve and the batched products."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _node_steps(
    model: Model, params: Mapping[str, torch.Tensor], tasks: Sequence[Task], config: NodeConfig
) -> list[NodeResult]:
    recipe = config.recipe
    spec = model.spec
    theta = to_params(params, spec)
    ep = stack_episodes(
        [t.episode(recipe.support_shots, recipe.query_shots, draw=config.round) for t in tasks]
    )

    def one(
        p: Params, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor
    ) -> tuple[Params, torch.Tensor, torch.Tensor, torch.Tensor]:
        g, (maml, device) = grad(
            lambda q: node_objective(model, q, xs, ys, xq, yq, recipe), has_aux=True
        )(p)
        return {k: -v for k, v in g.items()}, loss_fn(model, p, xq, yq), maml, device

    directions, before, maml, device = vmap(one, in_dims=(None, 0, 0, 0, 0))(
        theta, ep.x_support, ep.y_support, ep.x_query, ep.y_query
    )
    n = int(ep.x_support.shape[1])
    flat = np.concatenate(
        [directions[p.name].detach().reshape(len(tasks), -1).numpy() for p in spec.params], axis=1
    )  # row i is flatten_params of node i's direction
    updates = sparsify_rows(flat, spec.arch_id, recipe.top_fraction, "param")
    losses = zip(before.tolist(), maml.tolist(), device.tolist(), strict=True)
    return [
        NodeResult(
            update,
            n,
            {
                "loss_before": b,
                "loss_maml": m,
                "loss_after": d,
                "num_samples": float(n),
                "bytes": float(update.nbytes()),
            },
        )
        for update, (b, m, d) in zip(updates, losses, strict=True)
    ]


def node_step(
    model: Model,
    params: Mapping[str, torch.Tensor],
    task: Task,
    config: NodeConfig,
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


@dataclass(frozen=True)
class ServerState:
    """The server optimizer's state after ``step`` server steps (Adam moments over all params).

    ``b1_power``/``b2_power`` are running products of the betas (not ``pow``, whose last bit
    may differ between C libraries), so the bias correction is bit-reproducible.
    """

    m: np.ndarray
    v: np.ndarray
    b1_power: float = 1.0
    b2_power: float = 1.0
    step: int = 0

    @classmethod
    def zeros(cls, size: int) -> ServerState:
        return cls(np.zeros(size, np.float32), np.zeros(size, np.float32))

    def validate(self, size: int) -> None:
        for name, a in (("m", self.m), ("v", self.v)):
            if a.dtype != np.float32 or a.shape != (size,) or not np.all(np.isfinite(a)):
                raise MetaLearningError(f"server state {name} must be finite float32[{size}]")
        if np.any(self.v < 0):
            raise MetaLearningError("server state v must be non-negative")
        if not (0 < self.b1_power <= 1 and 0 < self.b2_power <= 1 and self.step >= 0):
            raise MetaLearningError("server state powers must be in (0, 1] and step >= 0")


def adam_step(
    delta: np.ndarray, state: ServerState, lr: float, b1: float, b2: float, eps: float
) -> tuple[np.ndarray, ServerState]:
    """Adam on the aggregated direction ``delta`` (minus a pseudo-gradient); returns the step to
    add and the new state. Only element-wise float32 numpy operations, each correctly rounded."""
    f = np.float32
    m = np.add(np.multiply(f(b1), state.m), np.multiply(f(1 - b1), delta))
    v = np.add(np.multiply(f(b2), state.v), np.multiply(f(1 - b2), np.multiply(delta, delta)))
    b1p, b2p = state.b1_power * b1, state.b2_power * b2
    m_hat = np.divide(m, f(1 - b1p))
    v_hat = np.divide(v, f(1 - b2p))
    step = np.multiply(f(lr), np.divide(m_hat, np.add(np.sqrt(v_hat), f(eps))))
    return step.astype(np.float32), ServerState(m, v, b1p, b2p, state.step + 1)


def server_step(
    params: Mapping[str, torch.Tensor],
    arch_id: str,
    delta: np.ndarray,
    state: ServerState,
    recipe: Recipe,
) -> tuple[Params, ServerState]:
    """The next meta-weights and server state from the aggregated direction; pure."""
    spec = get_model(arch_id).spec
    theta = to_params(params, spec)
    flat = flatten_params(theta, spec)
    if delta.shape != flat.shape or delta.dtype != np.float32 or not np.all(np.isfinite(delta)):
        raise MetaLearningError(
            f"delta must be finite float32{flat.shape}, got {delta.dtype}{delta.shape}"
        )
    state.validate(flat.shape[0])
    lr = recipe.server_lr_at(state.step)
    if recipe.server_optimizer == "adam":
        step, new_state = adam_step(
            delta, state, lr, recipe.adam_beta1, recipe.adam_beta2, recipe.adam_eps
        )
    else:
        step = np.multiply(np.float32(lr), delta, dtype=np.float32)
        new_state = ServerState(state.m, state.v, state.b1_power, state.b2_power, state.step + 1)
    new_flat = np.add(flat, step, dtype=np.float32)
    new = unflatten_params(new_flat, spec)
    return {k: torch.from_numpy(new[k].copy()) for k in theta}, new_state


@dataclass(frozen=True)
class RoundStats:
    round: int
    loss_before: float
    loss_after: float
    bytes_per_node: float


@dataclass
class FederatedResult:
    params: Params
    state: ServerState
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
    recipe: Recipe,
    *,
    rounds: int,
    nodes: int,
    seed: int = 0,
    init: Mapping[str, torch.Tensor] | None = None,
    aggregate: Aggregator = mean_aggregate,
    on_round: Callable[[int, Params], None] | None = None,
) -> FederatedResult:
    """In-process federated meta-training: ``nodes`` devices (node ``i`` holds train task ``i``,
    as in the swarm), rounds numbered from 1 (the chain's round ids select each data draw)."""
    if rounds < 0 or nodes < 1:
        raise MetaLearningError(f"need rounds >= 0 and nodes >= 1, got {rounds} and {nodes}")
    model = get_model(arch_id)
    params = to_params(init, model.spec) if init is not None else model.init(seed)
    state = ServerState.zeros(model.spec.num_params)
    tasks = [family.task(seed, i, "train") for i in range(nodes)]
    history: list[RoundStats] = []
    t0 = time.perf_counter()
    for r in range(1, rounds + 1):
        results = node_steps(model, params, tasks, NodeConfig(recipe, r))
        dense = [res.update.to_dense() for res in results]
        delta = aggregate(dense, [res.num_examples for res in results])
        params, state = server_step(params, arch_id, delta, state, recipe)
        history.append(
            RoundStats(
                r,
                float(np.mean([res.metrics["loss_before"] for res in results])),
                float(np.mean([res.metrics["loss_after"] for res in results])),
                float(np.mean([res.metrics["bytes"] for res in results])),
            )
        )
        if on_round is not None:
            on_round(r, params)
    wall = time.perf_counter() - t0
    mean_bytes = float(np.mean([h.bytes_per_node for h in history])) if history else 0.0
    return FederatedResult(params, state, history, wall, mean_bytes, dense_update_bytes(arch_id))
