"""The meta-regulator: it recalibrates on drift, not without, and that recovers the loss."""

from __future__ import annotations

from chainml.meta.tasks import TaskFamily
from chainml.meta.tasks.gasdrift import GasDriftFamily
from chainml.neuro.chip import ChipConfig
from chainml.neuro.plasticity import PlasticSNN
from chainml.neuro.regulator import MetaRegulator, RegulatorConfig
from chainml.neuro.scenario import StreamConfig, rounds_to_recover, run_regulated_stream

CHIP = ChipConfig(bits=8, synaptic_sigma=0.05, membrane_sigma=0.05)


def test_regulator_fires_on_a_step_in_density_and_relearns_the_normal() -> None:
    reg = MetaRegulator(RegulatorConfig(warmup=3, z=4.0, tolerance=0.2))
    energy = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0]
    density = [0.20, 0.21, 0.19, 0.20, 0.205, 0.2]
    assert not any(
        reg.observe(r, e, d) for r, (e, d) in enumerate(zip(energy, density, strict=True))
    )
    assert reg.observe(6, 1.0, 0.12)  # density fell by 40%, energy unchanged
    assert reg.recalibrations == 1
    # the new level becomes the normal after the warm-up
    assert not any(reg.observe(7 + i, 1.0, 0.12 + 0.002 * i) for i in range(5))
    assert reg.observe(12, 1.5, 0.12)  # now energy jumps


def test_regulator_recalibrates_after_drift_and_recovers_the_loss(
    net: PlasticSNN, gas: TaskFamily, trained: dict
) -> None:
    before = [gas.task(0, i, "eval") for i in range(8)]
    after = [t.poisoned(0.5) for t in before]
    cfg = StreamConfig(rounds=10)
    regulated = run_regulated_stream(net, trained, before, after, 5, cfg, CHIP, RegulatorConfig())
    stale = run_regulated_stream(net, trained, before, after, 5, cfg, CHIP, None)
    assert regulated.updates[1:5].sum() == 0  # no false alarm before the drift
    assert regulated.updates[5].sum() >= 6  # most devices notice at once
    assert stale.updates[1:].sum() == 0
    assert regulated.losses[6:].mean() < 0.7 * stale.losses[6:].mean()
    pre = float(regulated.losses[1:5].mean())
    assert rounds_to_recover(stale.losses, 5, pre, 0.25) is None


def test_regulator_stays_quiet_on_a_stationary_stream(net: PlasticSNN, trained: dict) -> None:
    still = GasDriftFamily(ageing=False)
    tasks = [still.task(0, i, "eval") for i in range(8)]
    cfg = StreamConfig(rounds=10)
    run = run_regulated_stream(net, trained, tasks, tasks, 5, cfg, CHIP, RegulatorConfig())
    assert run.updates[1:].sum() == 0
    assert sum(r.recalibrations for r in run.regulators) == 0
