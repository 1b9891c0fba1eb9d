"""How well a deployed model does its job, measured the way a device uses it.

A device runs the int8 body on its few labelled samples, re-fits the linear head on those
features by ridge regression (the on-device adaptation step of the device protocol,
``chainml.meta.adapt.refit_head``), then predicts new inputs. The score is the mean over
held-out tasks (the family's ``eval`` split) of query accuracy (classification) or query MSE
(regression). Float graphs and int8 models are scored on the very same samples, so the
difference between two models is a paired comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from chainml.mcu.graph import Graph, forward, to_channels_last
from chainml.mcu.int8 import Int8Model, run
from chainml.meta.tasks import TaskFamily

RIDGE_LAMBDA = 1.0


@dataclass(frozen=True)
class EvalSet:
    """Support and query samples of ``n`` tasks, inputs channels last."""

    kind: str
    n_out: int
    x_support: np.ndarray  # (T, S, *input)
    y_support: np.ndarray  # (T, S) labels or (T, S, 1) targets
    x_query: np.ndarray
    y_query: np.ndarray


def eval_set(
    family: TaskFamily, graph: Graph, n_tasks: int = 200, shots: int | None = None,
    queries: int | None = None, seed: int = 0,
) -> EvalSet:  # fmt: skip
    """Held-out tasks for scoring; shots/queries are per class for classification."""
    classify = family.kind == "classification"
    shots = shots or (5 if classify else 10)
    queries = queries or (10 if classify else 50)
    ep = family.episodes(seed, range(n_tasks), "eval", shots, queries)

    def cl(x: torch.Tensor) -> np.ndarray:
        t, s = x.shape[:2]
        return to_channels_last(graph, x.reshape(t * s, *x.shape[2:])).reshape(
            t, s, *graph.input_shape
        )

    n_out = family.n_way if classify else 1
    return EvalSet(
        family.kind, n_out, cl(ep.x_support), ep.y_support.numpy(), cl(ep.x_query),
        ep.y_query.numpy(),
    )  # fmt: skip


def ridge_predict(
    f_support: np.ndarray, y_support: np.ndarray, f_query: np.ndarray, kind: str, n_out: int
) -> np.ndarray:
    """Per-task ridge head (bias included, one-hot targets for classes) applied to queries."""
    f_support = f_support.astype(np.float64)
    f_query = f_query.astype(np.float64)
    ones = np.ones((*f_support.shape[:2], 1))
    a = np.concatenate([f_support, ones], axis=2)  # (T, S, d+1)
    if kind == "classification":
        targets = (y_support[..., None] == np.arange(n_out)).astype(np.float64)
    else:
        targets = y_support.reshape(y_support.shape[0], y_support.shape[1], -1).astype(np.float64)
    gram = a.transpose(0, 2, 1) @ a + RIDGE_LAMBDA * np.eye(a.shape[2])
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
    return feats.reshape(t, s, -1).numpy()


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
    """Accuracy or MSE of the float graph under the head re-fit protocol."""
    pred = ridge_predict(
        float_features(graph, es.x_support), es.y_support, float_features(graph, es.x_query),
        es.kind, es.n_out,
    )  # fmt: skip
    return _score(pred, es)


def score_int8(model: Int8Model, es: EvalSet) -> float:
    """Accuracy or MSE of the int8 model (bit-exact reference) under the head re-fit."""
    pred = ridge_predict(
        int8_features(model, es.x_support), es.y_support, int8_features(model, es.x_query),
        es.kind, es.n_out,
    )  # fmt: skip
    return _score(pred, es)


def relative_loss(kind: str, baseline: float, candidate: float) -> float:
    """Accuracy points lost (classification) or relative MSE increase (regression)."""
    if kind == "classification":
        return baseline - candidate
    return (candidate - baseline) / baseline if baseline > 0 else float("inf")
