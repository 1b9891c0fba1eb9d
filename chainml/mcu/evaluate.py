"""How well a deployed model does its job, measured the way a device uses it.

A device runs the int8 body on the samples it holds, re-fits the linear head on those features
by ridge regression (the device protocol's on-device step, ``chainml.meta.adapt.refit_head``
under :func:`chainml.meta.federated.device_adapt_config`), then predicts new inputs. How many
samples it holds (``device_shots``, per class for classification) and the ridge strength come
from the version's recipe, so :class:`DeviceProtocol` is built from it. The score is the mean
over held-out tasks (the family's ``eval`` split) of query accuracy (classification) or query
MSE (regression), on the same tasks and draws as :func:`chainml.meta.protocols.device_protocol`
with the same seed. Float graphs and int8 models are scored on the very same samples, so the
difference between two models is a paired comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from chainml.mcu.graph import Graph, forward, to_channels_last
from chainml.mcu.int8 import Int8Model, run
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import TaskFamily


@dataclass(frozen=True)
class DeviceProtocol:
    """The on-device step: a ridge head re-fit (``ridge_lambda``) on ``shots`` samples (per class
    for classification); scored on ``queries`` fresh samples per task (None: the product's
    evaluation default, 15 per class or 100)."""

    shots: int
    ridge_lambda: float
    queries: int | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> DeviceProtocol:
        return cls(recipe.device_shots, recipe.ridge_lambda)

    def query_count(self, kind: str) -> int:
        if self.queries is not None:
            return self.queries
        return 15 if kind == "classification" else 100  # chainml.meta.evaluate's defaults


@dataclass(frozen=True)
class EvalSet:
    """Support and query samples of ``n`` tasks, inputs channels last."""

    kind: str
    n_out: int
    ridge_lambda: float
    x_support: np.ndarray  # (T, S, *input)
    y_support: np.ndarray  # (T, S) labels or (T, S, 1) targets
    x_query: np.ndarray
    y_query: np.ndarray

    @property
    def support_targets(self) -> np.ndarray:
        """What the ridge fits: one-hot labels (classification) or the targets, float64."""
        return ridge_targets(self.y_support, self.kind, self.n_out)


def eval_set(
    family: TaskFamily, graph: Graph, protocol: DeviceProtocol, n_tasks: int = 300, seed: int = 0
) -> EvalSet:
    """Held-out tasks for scoring under ``protocol``."""
    queries = protocol.query_count(family.kind)
    ep = family.episodes(seed, range(n_tasks), "eval", protocol.shots, queries)

    def cl(x: torch.Tensor) -> np.ndarray:
        t, s = x.shape[:2]
        return to_channels_last(graph, x.reshape(t * s, *x.shape[2:])).reshape(
            t, s, *graph.input_shape
        )

    n_out = family.n_way if family.kind == "classification" else 1
    return EvalSet(
        family.kind, n_out, protocol.ridge_lambda, cl(ep.x_support), ep.y_support.numpy(),
        cl(ep.x_query), ep.y_query.numpy(),
    )  # fmt: skip


def family_inputs(
    family: TaskFamily, graph: Graph, split: str, n: int, seed: int, per_task: int = 10
) -> np.ndarray:
    """``n`` inputs (channels last) from tasks of ``split``, ``per_task`` per class and task,
    for calibration or testing."""
    n_tasks = -(-n // (per_task * max(family.n_way, 1)))
    ep = family.episodes(seed, range(n_tasks), split, per_task, 1)  # type: ignore[arg-type]
    x = ep.x_support.reshape(-1, *ep.x_support.shape[2:])
    return to_channels_last(graph, x)[:n]


def ridge_targets(y: np.ndarray, kind: str, n_out: int) -> np.ndarray:
    if kind == "classification":
        return (y[..., None] == np.arange(n_out)).astype(np.float64)
    return y.reshape(y.shape[0], y.shape[1], -1).astype(np.float64)


def ridge_predict(
    f_support: np.ndarray, targets: np.ndarray, f_query: np.ndarray, ridge_lambda: float
) -> np.ndarray:
    """Per-task ridge head (bias included) fitted on support features, applied to queries."""
    f_support = f_support.astype(np.float64)
    f_query = f_query.astype(np.float64)
    a = np.concatenate([f_support, np.ones((*f_support.shape[:2], 1))], axis=2)  # (T, S, d+1)
    gram = a.transpose(0, 2, 1) @ a + ridge_lambda * np.eye(a.shape[2])
    w = np.linalg.solve(gram, a.transpose(0, 2, 1) @ targets)  # (T, d+1, out)
    aq = np.concatenate([f_query, np.ones((*f_query.shape[:2], 1))], axis=2)
    return aq @ w


def _score(pred: np.ndarray, es: EvalSet) -> float:
    if es.kind == "classification":
        return float((pred.argmax(axis=-1) == es.y_query).mean())
    y = es.y_query.reshape(pred.shape)
    return float(((pred - y) ** 2).mean())


def float_features(graph: Graph, x: np.ndarray) -> np.ndarray:
    t, s = x.shape[:2]
    flat = torch.from_numpy(x.reshape(t * s, *graph.input_shape).astype(np.float32))
    with torch.no_grad():
        feats = forward(graph.layers[:-1], flat) if len(graph.layers) > 1 else flat
    return feats.reshape(t, s, -1).numpy()  # type: ignore[union-attr]


def int8_features(model: Int8Model, x: np.ndarray) -> np.ndarray:
    """Dequantized int8 body output (the head's input) for float inputs ``(T, S, ...)``."""
    t, s = x.shape[:2]
    q = model.quantize_input(x.reshape(t * s, *model.input_shape))
    head = model.layers[-1]
    if len(model.layers) > 1:
        body = run(model, q, collect=True)[-2]  # type: ignore[index]
        scale = model.layers[-2].output_scale
    else:
        body, scale = q, model.input_scale
    feats = (body.astype(np.float32) - head.input_zp) * np.float32(scale)
    return feats.reshape(t, s, -1)


def score_float(graph: Graph, es: EvalSet) -> float:
    """Accuracy or MSE of the float graph under the device protocol."""
    pred = ridge_predict(
        float_features(graph, es.x_support), es.support_targets,
        float_features(graph, es.x_query), es.ridge_lambda,
    )  # fmt: skip
    return _score(pred, es)


def score_int8(model: Int8Model, es: EvalSet) -> float:
    """Accuracy or MSE of the int8 model (bit-exact reference) under the device protocol."""
    pred = ridge_predict(
        int8_features(model, es.x_support), es.support_targets,
        int8_features(model, es.x_query), es.ridge_lambda,
    )  # fmt: skip
    return _score(pred, es)


def relative_loss(kind: str, baseline: float, candidate: float) -> float:
    """The relative loss against ``baseline``: the fraction of its accuracy lost
    (classification) or the relative MSE increase (regression); negative is a gain."""
    if baseline <= 0:
        return float("inf")
    if kind == "classification":
        return (baseline - candidate) / baseline
    return (candidate - baseline) / baseline
