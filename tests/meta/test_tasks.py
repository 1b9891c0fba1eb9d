"""Task families: shapes, dtypes, seeding, local streams and train/eval disjointness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainml.errors import MetaLearningError
from chainml.meta.models import get_model
from chainml.meta.tasks import TaskFamily, get_family
from chainml.meta.tasks.coldchain import ColdChainFamily, longest_run_above
from chainml.meta.tasks.digits import _pools


def _equal(a, b) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.__dict__.values(), b.__dict__.values(), strict=True)
    )


def test_episode_shapes_match_the_default_architecture(family: TaskFamily) -> None:
    ep = family.task(0, 3).episode(shots=4, queries=6)
    n_s, n_q = (4, 6) if family.kind == "regression" else (4 * family.n_way, 6 * family.n_way)
    assert ep.x_support.shape == (n_s, *family.input_shape)
    assert ep.x_query.shape == (n_q, *family.input_shape)
    assert ep.x_support.dtype == torch.float32
    assert torch.isfinite(ep.x_support).all() and torch.isfinite(ep.x_query).all()
    model = get_model(family.default_arch)
    assert model(model.init(0), ep.x_query).shape == (n_q, model.spec.output_dim)
    if family.kind == "regression":
        assert ep.y_support.shape == (n_s, 1) and ep.y_support.dtype == torch.float32
    else:
        assert ep.y_support.dtype == torch.int64
        assert model.spec.output_dim == family.n_way
        counts = torch.bincount(ep.y_support, minlength=family.n_way)
        assert counts.tolist() == [4] * family.n_way


def test_same_arguments_same_data_and_fresh_objects(family: TaskFamily) -> None:
    a = family.task(7, 11, "train").episode(3, 3, draw=2)
    b = get_family(family.name).task(7, 11, "train").episode(3, 3, draw=2)
    assert _equal(a, b)


def test_seed_index_draw_and_split_all_change_the_data(family: TaskFamily) -> None:
    base = family.task(7, 11, "train").episode(3, 3, draw=2)
    for other in (
        family.task(8, 11, "train").episode(3, 3, draw=2),
        family.task(7, 12, "train").episode(3, 3, draw=2),
        family.task(7, 11, "train").episode(3, 3, draw=3),
        family.task(7, 11, "eval").episode(3, 3, draw=2),
    ):
        assert not torch.equal(base.x_support, other.x_support)


def test_bad_arguments_raise_domain_errors() -> None:
    sine = get_family("sine")
    with pytest.raises(MetaLearningError, match="unknown task family"):
        get_family("tides")
    with pytest.raises(MetaLearningError):
        sine.task(0, -1)
    with pytest.raises(MetaLearningError):
        sine.task(0, 0, "test")  # type: ignore[arg-type]
    with pytest.raises(MetaLearningError):
        sine.task(0, 0).episode(0, 5)


def test_sine_follows_the_maml_distribution() -> None:
    sine = get_family("sine")
    tasks = [sine.task(0, i) for i in range(2000)]
    amps = np.array([t.amplitude for t in tasks])
    phases = np.array([t.phase for t in tasks])
    assert amps.min() >= 0.1 and amps.max() <= 5.0 and abs(amps.mean() - 2.55) < 0.1
    assert phases.min() >= 0.0 and phases.max() <= np.pi
    t = tasks[0]
    ep = t.episode(50, 50)
    assert ep.x_support.abs().max() <= 5.0
    expected = t.amplitude * torch.sin(ep.x_support.double() - t.phase)
    assert torch.allclose(ep.y_support.double(), expected, atol=1e-5)


def test_digits_eval_images_never_appear_in_training() -> None:
    pools = _pools()
    train = {row.tobytes() for pool in pools["train"] for row in pool}
    evals = [row.tobytes() for pool in pools["eval"] for row in pool]
    # the dataset has a handful of exact duplicate images; they may only fall on one side
    assert sum(r in train for r in evals) <= 5
    assert sum(len(p) for p in pools["train"]) + len(evals) == 1797


def test_digits_support_and_query_are_disjoint() -> None:
    ep = get_family("digits").task(0, 0, "eval").episode(5, 10)
    s = {r.numpy().tobytes() for r in ep.x_support}
    assert not any(r.numpy().tobytes() in s for r in ep.x_query)


def test_coldchain_labels_obey_the_excursion_rule() -> None:
    fam = ColdChainFamily()
    for i in range(10):
        task = fam.task(0, i)
        ep = task.episode(8, 8)
        readings_c = ep.x_support.double().numpy() * 10.0
        assert np.array_equal(task.label(readings_c), ep.y_support.numpy())


def test_longest_run_above() -> None:
    x = np.array([[0, 9, 9, 0, 9, 9, 9], [9, 9, 9, 9, 0, 0, 0]], dtype=float)
    assert longest_run_above(x, 8.0).tolist() == [3, 4]


def test_vibration_faults_add_energy_at_the_resonance() -> None:
    fam = get_family("vibration")
    task = fam.task(0, 1)
    rng = np.random.default_rng(0)
    normal, fault = task.sample_class(rng, 0, 200), task.sample_class(rng, 1, 200)
    band = lambda x: np.abs(np.fft.rfft(x[:, 0], axis=-1))[:, 28:57].mean()  # noqa: E731
    assert band(fault) > band(normal)
