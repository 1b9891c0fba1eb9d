"""Neuromorphic devices benchmark: spiking models, chip bit depth, event-driven updates, regulator.

    python bench/neuromorphic.py           # the full run (a few minutes on 2 cores)
    python bench/neuromorphic.py --quick   # a smoke run with tiny budgets (targets not expected)

All on the ``gasdrift`` event task (event-based MOX gas sensors with ageing), seeded:

* ``snn_vs_mlp``: few-shot loss (10 shots, 200 held-out tasks) of the spiking model adapted by
  its meta-learned plasticity rule (3 passes) and of the MLP adapted by MAML (3 gradient steps),
  both meta-trained with the same task sampler, meta-batch and iterations.
* ``bit_depth``: the SNN meta-trained in float and with noise-injected (chip-in-the-loop)
  meta-training (noise on, bit depth drawn per iteration from float, 8, 6 and 4 bits), each
  scored at 4, 6 and 8 bits and unquantized ("float"), under the same chip noise
  (``ideal_float``: no noise either).
* ``event_driven``: a 40-round drifting stream (sensor ageing), devices adapting and sending
  every round against devices that adapt (replaying the labelled samples they buffered) and
  send only when their error crosses the trigger threshold or their 7-round buffer is full.
* ``regulator``: an abrupt sensor poisoning (gains halved) at round 10; devices with and without
  the meta-regulator (which watches energy and spike density and recalibrates). Poisoned
  sensors give fewer events, so even a perfect recalibration cannot return to the pre-drift
  loss; "recovered" means the fleet's median loss within 10% of that of devices calibrated on
  the poisoned sensors (the mean-based figure, which also charges missed devices, is reported
  too). The no-drift control is a stationary stream (no ageing either).

The two meta-trainings run in two worker processes (one per core), one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ARCH = "snn-gasdrift"
MLP = "mlp-gasdrift"
FAMILY = "gasdrift"
SIGMA = 0.05  # synaptic and membrane noise of the simulated chip
BITS = (4, 6, 8)
DEVICE_BITS = 8  # the chip the stream scenarios run on
POISON = 0.5
TARGET_4BIT = 0.20
TARGET_UPDATES = 0.30
TARGET_LOSS_COST = 0.10
TARGET_RECOVERY_ROUNDS = 3
RECOVERY_TOLERANCE = 0.1  # "recovered": mean loss within 10% of a freshly calibrated device


@dataclass(frozen=True)
class Budget:
    iterations: int
    eval_tasks: int
    devices: int
    event_rounds: int
    drift_rounds: int
    drift_at: int


FULL = Budget(
    iterations=400, eval_tasks=200, devices=40, event_rounds=40, drift_rounds=20, drift_at=10
)
QUICK = Budget(iterations=10, eval_tasks=100, devices=6, event_rounds=6, drift_rounds=8, drift_at=4)


def _setup() -> None:
    import torch

    torch.set_num_threads(1)


def _sampling():
    from chainml.neuro.metatrain import LifetimeSampling

    return LifetimeSampling(meta_batch=16, shots=10, queries=20)


def job_snn(b: Budget, noise_injected: bool) -> dict[str, Any]:
    """Meta-train the plastic SNN, in float or under the chip (noise + random bit depth)."""
    _setup()
    from chainml.meta.tasks import get_family
    from chainml.neuro.chip import FLOAT, ChipConfig
    from chainml.neuro.metatrain import MetaTrainConfig, meta_train
    from chainml.neuro.plasticity import PlasticSNN

    chip = ChipConfig(synaptic_sigma=SIGMA, membrane_sigma=SIGMA) if noise_injected else FLOAT
    cfg = MetaTrainConfig(
        iterations=b.iterations,
        sampling=_sampling(),
        chip=chip,
        bits_choices=(None, *BITS) if noise_injected else None,
    )
    res = meta_train(PlasticSNN(ARCH), get_family(FAMILY), cfg)
    return {"params": res.params, "wall_s": res.wall_time_s}


def job_mlp(b: Budget) -> dict[str, Any]:
    """The MLP baseline: MAML with 3 inner steps on the same sampler and budget."""
    _setup()
    from chainml.meta.adapt import AdaptConfig
    from chainml.meta.evaluate import evaluate
    from chainml.meta.maml import MAMLConfig, train_maml
    from chainml.meta.tasks import get_family

    fam = get_family(FAMILY)
    out: dict[str, Any] = {}
    for name, adapt in (
        ("maml", AdaptConfig(steps=3, inner_lr=0.01)),
        ("maml_ridge_head", AdaptConfig(steps=3, inner_lr=0.01, head_refit="ridge")),
    ):
        cfg = MAMLConfig(iterations=b.iterations, meta_lr=1e-3, adapt=adapt, sampling=_sampling())
        res = train_maml(fam, MLP, cfg)
        ev = evaluate(
            res.params,
            fam,
            arch_id=MLP,
            n_tasks=b.eval_tasks,
            shots=10,
            queries=50,
            steps=(3,),
            adapt_config=adapt,
        )
        out[name] = {
            "loss": ev.at(3).loss_mean,
            "ci95": ev.at(3).loss_ci95,
            "wall_s": res.wall_time_s,
        }
    return out


def bit_depth_table(net, params, b: Budget) -> dict[str, Any]:
    from chainml.meta.tasks import get_family
    from chainml.neuro.chip import FLOAT, ChipConfig
    from chainml.neuro.evaluate import evaluate_plastic

    fam = get_family(FAMILY)
    noisy = ChipConfig(synaptic_sigma=SIGMA, membrane_sigma=SIGMA)
    row: dict[str, Any] = {
        "ideal_float": evaluate_plastic(
            net, params, fam, chip=FLOAT, n_tasks=b.eval_tasks
        ).loss_mean,
        "float": evaluate_plastic(net, params, fam, chip=noisy, n_tasks=b.eval_tasks).loss_mean,
    }
    for bits in BITS:
        row[f"{bits}bit"] = evaluate_plastic(
            net, params, fam, chip=noisy.at_bits(bits), n_tasks=b.eval_tasks
        ).loss_mean
    return row


def event_section(net, params, b: Budget) -> dict[str, Any]:
    from chainml.meta.tasks import get_family
    from chainml.neuro.chip import ChipConfig
    from chainml.neuro.energy import update_bytes
    from chainml.neuro.events import TriggerConfig
    from chainml.neuro.scenario import StreamConfig, run_event_stream

    fam = get_family(FAMILY)
    chip = ChipConfig(bits=DEVICE_BITS, synaptic_sigma=SIGMA, membrane_sigma=SIGMA)
    tasks = [fam.task(0, i, "eval") for i in range(b.devices)]
    cfg = StreamConfig(rounds=b.event_rounds)
    trigger = TriggerConfig(ratio=1.05, smoothing=0.5, settle=2)
    buffer_rounds = 7
    always = run_event_stream(net, params, tasks, cfg, chip, None)
    event = run_event_stream(net, params, tasks, cfg, chip, trigger, buffer_rounds=buffer_rounds)
    silent = TriggerConfig(ratio=1e9)  # never fires, and a buffer that never fills
    never = run_event_stream(net, params, tasks, cfg, chip, silent, buffer_rounds=10**9)
    possible = b.devices * (b.event_rounds - 1)  # round 0 (calibration) excluded

    def side(r) -> dict[str, Any]:
        return {
            "updates_sent": r.updates_sent(),
            "energy_j": r.energy_j,
            "compute_j": float(r.compute_j[1:].sum()),
            "radio_j": float(r.radio_j[1:].sum()),
            "loss": r.mean_loss(),
        }

    return {
        "devices": b.devices,
        "rounds": b.event_rounds,
        "chip_bits": DEVICE_BITS,
        "update_bytes": update_bytes(net, DEVICE_BITS),
        "trigger": asdict(trigger),
        "buffer_rounds": buffer_rounds,
        "possible_updates": possible,
        "updates_by_error_trigger": int(event.error_triggered[1:].sum()),
        "updates_by_full_buffer": event.updates_sent() - int(event.error_triggered[1:].sum()),
        "always": side(always),
        "event": side(event),
        "never_after_calibration": side(never),
        "update_fraction": event.updates_sent() / possible,
        "energy_fraction": (
            event.energy_j - float(event.compute_j[0].sum() + event.radio_j[0].sum())
        )
        / (always.energy_j - float(always.compute_j[0].sum() + always.radio_j[0].sum())),
        "loss_cost": event.mean_loss() / always.mean_loss() - 1.0,
    }


def regulator_section(net, params, b: Budget) -> dict[str, Any]:
    from chainml.meta.tasks import get_family
    from chainml.meta.tasks.gasdrift import GasDriftFamily
    from chainml.neuro.chip import ChipConfig
    from chainml.neuro.regulator import RegulatorConfig
    from chainml.neuro.scenario import StreamConfig, rounds_to_recover, run_regulated_stream

    fam = get_family(FAMILY)
    chip = ChipConfig(bits=DEVICE_BITS, synaptic_sigma=SIGMA, membrane_sigma=SIGMA)
    before = [fam.task(0, i, "eval") for i in range(b.devices)]
    after = [t.poisoned(POISON) for t in before]
    cfg = StreamConfig(rounds=b.drift_rounds)
    reg = RegulatorConfig(tolerance=0.1)
    d = b.drift_at
    with_reg = run_regulated_stream(net, params, before, after, d, cfg, chip, reg)
    without = run_regulated_stream(net, params, before, after, d, cfg, chip, None)
    still = [GasDriftFamily(ageing=False).task(0, i, "eval") for i in range(b.devices)]
    control = run_regulated_stream(net, params, still, still, d, cfg, chip, reg)
    # What recalibration can reach in the new environment: devices calibrated on the poisoned
    # sensors from the start (same rounds, same chip).
    fresh = run_regulated_stream(net, params, after, after, d, cfg, chip, None)
    target = float(fresh.losses[d:].mean())
    target_median = float(np.median(fresh.losses[d:], axis=1).mean())
    pre = float(with_reg.losses[1:d].mean())
    recal = with_reg.updates[1:]
    return {
        "devices": b.devices,
        "rounds": b.drift_rounds,
        "drift_round": d,
        "poison_factor": POISON,
        "config": asdict(reg),
        "recalibrations": int(recal.sum()),
        "recalibrations_before_drift": int(with_reg.updates[1:d].sum()),
        "recalibrations_at_drift": int(with_reg.updates[d].sum()),
        "recalibrations_without_drift": int(control.updates[1:].sum()),
        "loss_pre_drift": pre,
        "loss_fresh_calibration_after_drift": target,
        "loss_after_drift_with": float(with_reg.losses[d:].mean()),
        "loss_after_drift_without": float(without.losses[d:].mean()),
        "loss_curve_with": [round(float(x), 4) for x in with_reg.losses.mean(axis=1)],
        "loss_curve_without": [round(float(x), 4) for x in without.losses.mean(axis=1)],
        "density_curve": [round(float(x), 4) for x in with_reg.densities.mean(axis=1)],
        "recovery_tolerance": RECOVERY_TOLERANCE,
        "recalibrated_within_1_round_of_drift": int(with_reg.updates[d : d + 2].any(axis=0).sum()),
        "never_recalibrated_after_drift": int((~with_reg.updates[d:].any(axis=0)).sum()),
        "rounds_to_recover": rounds_to_recover(
            with_reg.losses, d, target_median, RECOVERY_TOLERANCE, "median"
        ),
        "rounds_to_recover_mean": rounds_to_recover(with_reg.losses, d, target, RECOVERY_TOLERANCE),
        "rounds_to_recover_without": rounds_to_recover(
            without.losses, d, target_median, RECOVERY_TOLERANCE, "median"
        ),
        "loss_median_curve_with": [round(float(x), 4) for x in np.median(with_reg.losses, axis=1)],
        "loss_median_fresh_calibration_after_drift": target_median,
        "energy_j_with": with_reg.energy_j,
        "energy_j_without": without.energy_j,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets for a smoke run")
    args = parser.parse_args(argv)
    b = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        hw = pool.submit(job_snn, b, True)  # the longest job first
        flt = pool.submit(job_snn, b, False)
        mlp = pool.submit(job_mlp, b)
        hw_res, float_res, mlp_res = hw.result(), flt.result(), mlp.result()
    _setup()
    from chainml.meta.tasks import get_family
    from chainml.neuro.chip import FLOAT
    from chainml.neuro.evaluate import evaluate_plastic
    from chainml.neuro.plasticity import PlasticSNN

    net = PlasticSNN(ARCH)
    fam = get_family(FAMILY)
    snn_eval = evaluate_plastic(net, float_res["params"], fam, chip=FLOAT, n_tasks=b.eval_tasks)
    init = net.init(0)  # the same weights with alpha and eta put back to their initial values
    coeffs_reset = {
        k: init[k] if k.startswith(("rule.alpha.", "rule.log_eta.")) else v
        for k, v in float_res["params"].items()
    }
    reset_eval = evaluate_plastic(net, coeffs_reset, fam, chip=FLOAT, n_tasks=b.eval_tasks)
    snn_vs_mlp = {
        "task": FAMILY,
        "shots": 10,
        "eval_tasks": b.eval_tasks,
        "meta_iterations": b.iterations,
        "snn_plasticity": {
            "loss": snn_eval.loss_mean,
            "ci95": snn_eval.loss_ci95,
            "loss_without_adaptation": snn_eval.loss_before,
            "loss_with_initial_alpha_eta": reset_eval.loss_mean,
            "spike_density": snn_eval.spike_density,
            "passes": net.config.passes,
            "wall_s": float_res["wall_s"],
        },
        "mlp": mlp_res["maml"],
        "mlp_ridge_head": mlp_res["maml_ridge_head"],
    }
    trained_float = bit_depth_table(net, float_res["params"], b)
    trained_noise = bit_depth_table(net, hw_res["params"], b)
    bit_depth = {
        "chip_noise": {"synaptic_sigma": SIGMA, "membrane_sigma": SIGMA},
        "float_meta_training": trained_float,
        "noise_injected_meta_training": trained_noise,
        "ratio_4bit_to_float": trained_noise["4bit"] / trained_noise["float"],
        "ratio_4bit_to_float_trained_float": trained_noise["4bit"] / trained_float["float"],
        "noise_training_wall_s": hw_res["wall_s"],
    }
    event = event_section(net, hw_res["params"], b)
    regulator = regulator_section(net, hw_res["params"], b)
    targets = {
        "4bit_within_20pct_of_float": bit_depth["ratio_4bit_to_float"] <= 1 + TARGET_4BIT,
        "event_updates_le_30pct": event["update_fraction"] <= TARGET_UPDATES,
        "event_loss_cost_le_10pct": event["loss_cost"] <= TARGET_LOSS_COST,
        "regulator_recovers_within_3_rounds": regulator["rounds_to_recover"] is not None
        and regulator["rounds_to_recover"] <= TARGET_RECOVERY_ROUNDS,
    }
    summary = {
        "mode": "quick" if args.quick else "full",
        "snn_vs_mlp": snn_vs_mlp,
        "bit_depth": bit_depth,
        "event_driven": event,
        "regulator": regulator,
        "targets": targets,
        "wall_s": time.perf_counter() - t0,
    }
    print(f"snn {snn_eval.loss_mean:.4f} vs mlp {mlp_res['maml']['loss']:.4f}", file=sys.stderr)
    print(json.dumps(summary, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
