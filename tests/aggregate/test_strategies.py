"""Aggregation rules: robustness, canonical order, and exact reproducibility."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from chainml.aggregate import rules
from chainml.aggregate.strategies import (
    STRATEGIES,
    Contribution,
    Krum,
    Mean,
    Median,
    TrimmedMean,
    strategy_for_rule,
    strategy_named,
)
from chainml.errors import ConfigError

DIM = 257


def honest_and_byzantine(
    n_honest: int, n_bad: int, seed: int = 0, bad_scale: float = 100.0
) -> tuple[list[Contribution], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=DIM).astype(np.float32)
    honest = [
        Contribution(f"0x{i:040x}", (truth + 0.1 * rng.normal(size=DIM)).astype(np.float32), 5)
        for i in range(n_honest)
    ]
    bad = [
        Contribution(f"0x{0xBAD0 + i:040x}", (-bad_scale * truth).astype(np.float32), 5)
        for i in range(n_bad)
    ]
    return honest + bad, truth


@pytest.mark.parametrize("name", ["median", "trimmed", "krum"])
def test_robust_rules_resist_a_byzantine_minority(name: str) -> None:
    contributions, truth = honest_and_byzantine(n_honest=16, n_bad=4)
    result = strategy_named(name).aggregate(contributions)
    assert np.linalg.norm(result.delta - truth) < 0.2 * np.linalg.norm(truth)
    bad_nodes = {c.node for c in contributions[16:]}
    assert bad_nodes <= set(result.excluded)
    assert not bad_nodes & set(result.included)


def test_mean_is_not_robust_and_excludes_nobody() -> None:
    contributions, truth = honest_and_byzantine(n_honest=16, n_bad=4)
    result = Mean().aggregate(contributions)
    assert result.excluded == ()
    assert np.linalg.norm(result.delta - truth) > 5 * np.linalg.norm(truth)


def test_mean_weights_by_examples() -> None:
    a = Contribution("0xa", np.ones(4, np.float32), num_examples=3)
    b = Contribution("0xb", np.zeros(4, np.float32), num_examples=1)
    assert Mean().aggregate([a, b]).delta.tolist() == [0.75] * 4


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_input_order_does_not_change_a_single_bit(name: str) -> None:
    contributions, _ = honest_and_byzantine(n_honest=11, n_bad=3, seed=7)
    strategy = strategy_named(name)
    first = strategy.aggregate(contributions)
    shuffled = [contributions[i] for i in np.random.default_rng(1).permutation(len(contributions))]
    second = strategy.aggregate(shuffled)
    assert first.delta.tobytes() == second.delta.tobytes()
    assert first.included == second.included and first.excluded == second.excluded
    assert list(first.included) == sorted(first.included, key=str.lower)


def test_inputs_are_not_modified() -> None:
    for bad in (-0.1, 0.5):
        with pytest.raises(ConfigError, match="mix_fraction must be in"):
            strategy_named("guard", mix_fraction=bad)
    contributions, _ = honest_and_byzantine(n_honest=6, n_bad=2)
    before = [c.delta.copy() for c in contributions]
    for name in STRATEGIES:
        strategy_named(name).aggregate(contributions)
    assert all(np.array_equal(b, c.delta) for b, c in zip(before, contributions, strict=True))


def test_known_values() -> None:
    rows = np.array([[1, 10], [2, 20], [3, 30], [100, -100]], dtype=np.float32)
    assert rules.coordinate_median(rows).tolist() == [2.5, 15.0]
    assert rules.trimmed_mean(rows, 0.25).tolist() == [2.5, 15.0]
    assert rules.weighted_mean(rows).tolist() == [26.5, -10.0]


def test_distances_are_exact_integers() -> None:
    rows = np.random.default_rng(3).normal(size=(12, 300)).astype(np.float32)
    fast = rules.squared_distances(rows)
    fixed = rules.to_fixed_point(rows).astype(np.int64)
    slow = np.array(
        [[int(((fixed[i] - fixed[j]) ** 2).sum()) for j in range(12)] for i in range(12)]
    )
    assert np.array_equal(fast, slow)


def test_nearest_neighbour_mixing_averages_each_row_with_its_nearest() -> None:
    """Four rows, f = 1: each row becomes the mean of its three nearest (itself included); the
    far-off row 100 enters no other row's mean."""
    rows = np.array([[0.0], [1.0], [3.0], [100.0]], dtype=np.float32)
    mixed = rules.nearest_neighbour_mix(rows, 0.25)
    assert np.allclose(mixed[:, 0], [4 / 3, 4 / 3, 4 / 3, 104 / 3], rtol=1e-6)
    assert np.allclose(rules.nearest_neighbour_mix(rows, 0.0)[:, 0], 26.0)  # f = 0: the mean
    with pytest.raises(ConfigError, match="mixing fraction"):
        rules.nearest_neighbour_mix(rows, 0.5)


def test_mixing_in_blocks_mixes_only_within_a_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the block size, rows mix only with rows of their own contiguous block (bounded
    cost); each block gives what mixing it alone gives."""
    rows = np.random.default_rng(5).normal(size=(10, 40)).astype(np.float32)
    monkeypatch.setattr(rules, "MIX_BLOCK", 4)  # 10 rows -> blocks of 4, 3 and 3
    blocked = rules.nearest_neighbour_mix(rows, 0.25)
    for block in (slice(0, 4), slice(4, 7), slice(7, 10)):
        alone = rules.nearest_neighbour_mix(rows[block], 0.25)
        assert np.array_equal(blocked[block], alone)


def test_guard_mixes_only_when_mixing_can_leave_someone_out() -> None:
    """With fewer than 4 updates, f = floor(0.25 n) = 0 and mixing would be the plain mean
    (giving up centred clipping's bound): guard then clips the raw updates."""
    mixing, plain = strategy_named("guard", mix_fraction=0.25), strategy_named("guard")
    contributions, _ = honest_and_byzantine(n_honest=2, n_bad=1)
    assert np.array_equal(
        mixing.aggregate(contributions).delta, plain.aggregate(contributions).delta
    )
    for bad in (-0.1, 0.5):
        with pytest.raises(ConfigError, match="mix_fraction must be in"):
            strategy_named("guard", mix_fraction=bad)
    contributions, _ = honest_and_byzantine(n_honest=6, n_bad=2)
    assert not np.array_equal(
        mixing.aggregate(contributions).delta, plain.aggregate(contributions).delta
    )


def test_mixing_is_a_committed_opt_in_setting_of_the_recipe() -> None:
    """The setting that shapes the aggregate is in the recipe: a recipe naming mix_fraction
    0.25 round-trips and mixes; a default recipe (mixing is opt-in) and one without the key
    (an older version) recompute without mixing."""
    from dataclasses import replace

    from chainml.aggregate.strategies import strategy_for_recipe
    from chainml.meta.recipe import Recipe

    default = Recipe.for_family("sine")
    assert default.strategy_settings == {} and strategy_for_recipe(default).mix_fraction == 0.0
    mixing = replace(default, aggregation_settings=(("mix_fraction", 0.25),))
    assert Recipe.parse(mixing.canonical()) == mixing
    assert strategy_for_recipe(mixing) == strategy_named("guard", mix_fraction=0.25)
    assert Recipe.parse(mixing.canonical().replace(b'"mix_fraction":0.25', b"")) == default
    with pytest.raises(ConfigError, match="mix_fraction"):
        strategy_for_recipe(replace(default, aggregation_settings=(("mix_fraction", 0.6),)))


DIGEST_SCRIPT = """
import hashlib, sys
from tests.aggregate.test_strategies import honest_and_byzantine
from chainml.aggregate.strategies import STRATEGIES, strategy_named
contributions, _ = honest_and_byzantine(n_honest=40, n_bad=9, seed=11)
for name in sorted(STRATEGIES):
    result = strategy_named(name).aggregate(contributions)
    print(name, hashlib.sha256(result.delta.tobytes()).hexdigest(), ",".join(result.excluded))
"""


def test_same_bits_without_simd_and_with_other_thread_counts() -> None:
    """Emulate other machines: numpy without its SIMD kernels, BLAS with 1 or 2 threads."""
    outputs = set()
    for env in (
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"},
        {
            "OPENBLAS_NUM_THREADS": "1",
            "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX AVX2 FMA3 AVX F16C",
            "OPENBLAS_CORETYPE": "Prescott",
        },
    ):
        result = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert len(next(iter(outputs)).splitlines()) == len(STRATEGIES)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "no contributions"),
        ([Contribution("0xa", np.ones(3, np.float32))] * 2, "appears twice"),
        (
            [
                Contribution("0xa", np.ones(3, np.float32)),
                Contribution("0xb", np.ones(4, np.float32)),
            ],
            "same length",
        ),
        ([Contribution("0xa", np.array([1, np.nan], np.float32))], "NaN"),
    ],
)
def test_bad_input_is_rejected(bad: list[Contribution], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Median().aggregate(bad)


def test_rule_ids_round_trip() -> None:
    for strategy in (Mean(), Median(), TrimmedMean(), Krum()):
        assert type(strategy_for_rule(strategy.rule_id)) is type(strategy)
    with pytest.raises(ConfigError, match="unknown aggregation rule"):
        strategy_named("average")
