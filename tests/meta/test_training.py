"""Meta-trainers and the evaluation API: determinism and adaptation on held-out tasks."""

from __future__ import annotations

import pytest
import torch

from chainml.errors import MetaLearningError
from chainml.meta.adapt import AdaptConfig
from chainml.meta.evaluate import evaluate, mean_ci95
from chainml.meta.maml import MAMLConfig, scratch_init, train_fomaml, train_joint, train_maml
from chainml.meta.reptile import ReptileConfig, train_reptile
from chainml.meta.tasks import get_family
from chainml.meta.training import TaskSampling

SMALL = MAMLConfig(
    iterations=30,
    adapt=AdaptConfig(steps=1, inner_lr=0.01),
    sampling=TaskSampling(meta_batch=5, shots=5, queries=5),
)


def _same(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("trainer", [train_maml, train_fomaml, train_joint])
def test_trainers_are_deterministic(sine, trainer) -> None:
    a, b = trainer(sine, "mlp-sine", SMALL), trainer(sine, "mlp-sine", SMALL)
    assert _same(a.params, b.params) and a.losses == b.losses
    assert not _same(a.params, scratch_init("mlp-sine", 0))


def test_reptile_is_deterministic_and_moves(sine) -> None:
    cfg = ReptileConfig(iterations=20, sampling=TaskSampling(meta_batch=4, shots=5, queries=5))
    a, b = train_reptile(sine, "mlp-sine", cfg), train_reptile(sine, "mlp-sine", cfg)
    assert _same(a.params, b.params)
    assert not _same(a.params, scratch_init("mlp-sine", cfg.init_seed))


def test_finite_population_reuses_tasks_with_fresh_draws(sine) -> None:
    s = TaskSampling(meta_batch=4, shots=3, queries=3, population=3)
    assert all(0 <= i < 3 for it in range(5) for i in s.indices(it))
    assert not torch.equal(s.batch(sine, 0).x_support, s.batch(sine, 1).x_support)


def test_maml_adaptation_reduces_loss_on_held_out_sine_tasks(sine, sine_meta_params) -> None:
    res = evaluate(sine_meta_params, sine, n_tasks=100, shots=5, steps=(0, 1, 5, 10))
    k0, k1, k5, k10 = (res.at(k).loss_mean for k in (0, 1, 5, 10))
    assert k10 < k5 < k1 < k0
    assert all(r.loss_ci95 > 0 for r in res.results)
    scratch = evaluate(scratch_init("mlp-sine", 1), sine, n_tasks=100, shots=5, steps=(10,))
    assert res.at(10).loss_mean < scratch.at(10).loss_mean


def test_int8_evaluation_is_close_to_float(sine, sine_meta_params) -> None:
    f = evaluate(sine_meta_params, sine, n_tasks=100, steps=(0, 5))
    q = evaluate(sine_meta_params, sine, n_tasks=100, steps=(0, 5), quantized=True)
    assert q.quantized and q.at(5).loss_mean != f.at(5).loss_mean
    assert q.at(5).loss_mean == pytest.approx(f.at(5).loss_mean, rel=0.1)


@pytest.mark.parametrize("name", ["meter", "vibration", "coldchain", "digits"])
def test_adaptation_helps_on_held_out_tasks_of_every_family(name) -> None:
    fam = get_family(name)
    lr = 0.02 if fam.kind == "regression" else 0.2
    cfg = MAMLConfig(
        iterations=40,
        adapt=AdaptConfig(steps=1, inner_lr=lr),
        sampling=TaskSampling(meta_batch=5, shots=5, queries=5),
    )
    meta = train_maml(fam, fam.default_arch, cfg).params
    res = evaluate(
        meta, fam, n_tasks=100, shots=5, steps=(0, 10), adapt_config=AdaptConfig(inner_lr=lr)
    )
    assert res.at(10).loss_mean < res.at(0).loss_mean
    if fam.kind == "classification":
        assert res.at(10).acc_mean > res.at(0).acc_mean
        assert 0.0 <= res.at(10).acc_mean <= 1.0


def test_evaluate_requires_enough_tasks_and_valid_weights(sine, sine_model) -> None:
    with pytest.raises(MetaLearningError, match="at least 100"):
        evaluate(sine_model.init(0), sine, n_tasks=50)
    with pytest.raises(MetaLearningError):
        evaluate(scratch_init("mlp-meter"), sine, n_tasks=100)


def test_evaluation_is_deterministic(sine, sine_meta_params) -> None:
    a = evaluate(sine_meta_params, sine, n_tasks=100, steps=(1,))
    b = evaluate(sine_meta_params, sine, n_tasks=100, steps=(1,))
    assert a == b


def test_mean_ci95() -> None:
    m, h = mean_ci95(torch.arange(100.0).numpy())
    assert m == pytest.approx(49.5) and h == pytest.approx(1.96 * 29.011 / 10, rel=1e-3)
