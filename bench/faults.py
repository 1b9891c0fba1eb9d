"""Reliability report: every attack at 10/20/30% adversaries, and every operational fault.

Attacks run a 20-node, 5-round sine swarm (batched, trimmed mean) and compare with the clean
run: final held-out 5-shot loss, adversaries' mean reputation against honest nodes', and how
many adversarial updates were kept out. Faults report rounds finalized and closed, versions
lost (must be 0) and, where a run is interrupted, whether the resumed run reaches the same
final CID as an uninterrupted one. Prints tables, then one JSON object as the last line.

    python bench/faults.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.chain.types import cid_from_struct
from chainml.cli.swarm_cmd import run_swarm
from chainml.errors import ChainMLError
from chainml.services.chain import LocalChain
from chainml.storage.cid import onchain_to_str
from chainml.swarm.attacks import ATTACKS
from chainml.swarm.config import SwarmConfig

NODES, ROUNDS = 20, 5
LOSS_TOLERANCE = 1.2  # within 20% of the clean run


@dataclass
class Env:
    data_dir: Path
    chain: LocalChain
    url: str

    def run(self, config: SwarmConfig, name: str = "run", ipfs: str = "embedded") -> list[dict]:
        return run_swarm(
            config,
            data_dir=self.data_dir,
            run_dir=self.data_dir / name,
            rpc_url=self.url,
            ipfs=ipfs,
            workers=1,
            show_progress=False,
        )

    def ledger(self) -> Ledger:
        deployments = load_deployments(deployments_path(self.data_dir))
        assert deployments is not None
        return Ledger.from_deployments(Web3(Web3.HTTPProvider(self.url)), deployments)

    def versions(self) -> list[str]:
        ledger = self.ledger()
        return [
            onchain_to_str(*cid_from_struct(ledger.version(v)["weights"]))
            for v in range(ledger.current_version() + 1)
        ]


@contextmanager
def env() -> Iterator[Env]:
    with tempfile.TemporaryDirectory(prefix="chainml-faults-") as tmp:
        chain = LocalChain(Path(tmp))
        info = chain.up()
        try:
            yield Env(Path(tmp), chain, info.url)
        finally:
            chain.down()


def node_rows(e: Env, name: str = "run") -> list[dict]:
    return [json.loads(line) for line in (e.data_dir / name / "nodes.jsonl").open()]


def config(**kw: Any) -> SwarmConfig:
    settings: dict[str, Any] = {
        "nodes": NODES,
        "rounds": ROUNDS,
        "mode": "batched",
        "aggregation": "trimmed",
    }
    return SwarmConfig(**(settings | kw))


def attack_report(attack: str, fraction: float, clean_loss: float) -> dict[str, Any]:
    with env() as e:
        rows = e.run(config(adversaries=fraction, attack=attack))
        last = [r for r in node_rows(e) if r["round"] == rows[-1]["round"]]
        honest = mean(r["reputation"] for r in last if not r["adversary"])
        if attack == "bad_aggregator":
            ledger = e.ledger()
            adversary_rep = float(ledger.reputation_of(ledger.proposal(1)["proposer"]))
            kept_out = sum(
                1
                for r in rows
                for p in ledger.proposals(r["round"])
                if ledger.proposal(int(p["proposalId"]))["status"] == 3
            )
            bad_total = len(rows)
        else:
            adversarial = [r for r in node_rows(e) if r["adversary"]]
            adversary_rep = mean(r["reputation"] for r in last if r["adversary"])
            kept_out = sum(r["status"] != "included" for r in adversarial)
            bad_total = len(adversarial)
    loss = rows[-1]["heldout"]["loss_after"]["mean"]
    return {
        "final_loss": round(loss, 4),
        "loss_vs_clean": round(loss / clean_loss, 4),
        "within_20pct": loss <= LOSS_TOLERANCE * clean_loss,
        "adversary_reputation": round(adversary_rep, 1),
        "honest_reputation": round(honest, 1),
        "adversaries_below_honest": adversary_rep < honest,
        "bad_updates_excluded": kept_out,
        "bad_updates_total": bad_total,
    }


def fault_dropout() -> dict[str, Any]:
    with env() as e:
        rows = e.run(config(dropout=0.3))
        finalized = sum(r["status"] == "finalized" for r in rows)
        return {
            "rounds_finalized": finalized,
            "rounds_closed": sum(r["status"] == "closed" for r in rows),
            "versions_lost": finalized - e.ledger().current_version(),
        }


def fault_gateway_crash(reference: list[str]) -> dict[str, Any]:
    real_post = Ledger.post_batch
    calls = {"n": 0}

    def crashing(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("gateway crashed mid-batch")
        return real_post(self, *args, **kwargs)

    cfg = config(merkle_batch=8)
    with env() as e:
        Ledger.post_batch = crashing  # type: ignore[method-assign]
        error = ""
        try:
            e.run(cfg)
        except ConnectionError as exc:
            error = str(exc)
        finally:
            Ledger.post_batch = real_post  # type: ignore[method-assign]
        rows = e.run(cfg)
        versions = e.versions()
        return {
            "error": error,
            "rounds_finalized": sum(r["status"] == "finalized" for r in rows),
            "versions_lost": ROUNDS + 1 - len(versions),
            "same_final_cid_after_resume": versions[-1] == reference[-1],
        }


def fault_ipfs(kind: str) -> dict[str, Any]:
    """IPFS down (connection refused) or slow (accepts, never answers): a clear error, fast."""
    listener = None
    if kind == "slow":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        threading.Thread(
            target=lambda: [accepted.append(listener.accept()[0]) for _ in range(16)],
            daemon=True,
        ).start()
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    start = time.perf_counter()
    with env() as e:
        try:
            e.run(config(nodes=3, rounds=1), ipfs=f"http://127.0.0.1:{port}")
            message = "no error"
        except ChainMLError as exc:
            message = str(exc).splitlines()[0][:160]
    if listener is not None:
        listener.close()
    return {
        "clear_error": message != "no error",
        "error": message,
        "seconds_to_error": round(time.perf_counter() - start, 1),
    }


def fault_anvil_restart() -> dict[str, Any]:
    with env() as e:
        e.run(config(rounds=3))
        before = e.versions()
        info = e.chain.info()
        assert info is not None
        os.kill(info.pid, signal.SIGKILL)
        os.waitpid(info.pid, 0)  # Anvil is our child: reap it, so it is surely gone
        e.url = e.chain.up().url
        after = e.versions()
        rows = e.run(config(rounds=2), name="after-restart")
        return {
            "rounds_finalized": 3 + sum(r["status"] == "finalized" for r in rows),
            "versions_lost": len(set(before) - set(after)),
            "history_kept": before == after,
        }


def swarm_argv(e: Env, cfg: SwarmConfig) -> list[str]:
    return [
        sys.executable, "-m", "chainml", "--data-dir", str(e.data_dir), "swarm", "run",
        "--nodes", str(cfg.nodes), "--rounds", str(cfg.rounds), "--mode", cfg.mode,
        "--aggregation", cfg.aggregation, "--workers", "1", "--rpc-url", e.url,
        "--run-dir", str(e.data_dir / "run"),
    ]  # fmt: skip


def fault_orchestrator_kills(kills: int, reference: list[str], seed: int = 7) -> dict[str, Any]:
    """SIGKILL the orchestrator at random moments, resume each time, compare the final CID."""
    rng = random.Random(seed)
    cfg = config(nodes=10, rounds=3)
    same = 0
    lost = 0
    for _ in range(kills):
        with env() as e:
            proc = subprocess.Popen(
                swarm_argv(e, cfg), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + rng.uniform(3.0, 14.0)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # the kill point is random wall-clock time, by design
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            finalized_before = e.ledger().current_version() if deployments_path(
                e.data_dir
            ).exists() else 0  # fmt: skip
            subprocess.run(swarm_argv(e, cfg), check=True, capture_output=True, timeout=600)
            versions = e.versions()
            same += versions[-1] == reference[-1]
            lost += max(0, finalized_before - (len(versions) - 1))
    return {"kills": kills, "same_final_cid": same, "versions_lost": lost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one fraction, 3 kills")
    args = parser.parse_args()
    fractions = (0.2,) if args.quick else (0.1, 0.2, 0.3)
    started = time.perf_counter()

    with env() as e:
        clean = e.run(config())
    clean_loss = clean[-1]["heldout"]["loss_after"]["mean"]
    attacks: dict[str, dict[str, Any]] = {}
    print(f"clean run: final 5-shot loss {clean_loss:.4f}")
    print(f"{'attack':>15} {'adv':>4} {'loss':>7} {'vs clean':>8} {'rep adv':>8} "
          f"{'rep honest':>10} {'excluded':>9}")  # fmt: skip
    for attack in ATTACKS:
        for fraction in fractions:
            r = attack_report(attack, fraction, clean_loss)
            attacks[f"{attack}@{fraction:g}"] = r
            print(
                f"{attack:>15} {fraction:>4.0%} {r['final_loss']:>7.3f} "
                f"{r['loss_vs_clean']:>8.3f} {r['adversary_reputation']:>8.1f} "
                f"{r['honest_reputation']:>10.1f} "
                f"{r['bad_updates_excluded']:>4}/{r['bad_updates_total']:<4}"
            )

    with env() as e:
        e.run(config(nodes=10, rounds=3))
        reference_small = e.versions()
    with env() as e:
        e.run(config(merkle_batch=8))
        reference = e.versions()
    faults = {
        "dropout_30pct": fault_dropout(),
        "gateway_crash_mid_batch": fault_gateway_crash(reference),
        "ipfs_down": fault_ipfs("down"),
        "ipfs_slow": fault_ipfs("slow"),
        "anvil_sigkill_restart": fault_anvil_restart(),
        "orchestrator_sigkill": fault_orchestrator_kills(3 if args.quick else 10, reference_small),
    }
    for name, result in faults.items():
        print(f"{name:>26}: {json.dumps(result)}")

    at20 = {k: v for k, v in attacks.items() if k.endswith("@0.2")}
    summary = {
        "bench": "faults",
        "nodes": NODES,
        "rounds": ROUNDS,
        "clean_final_loss": round(clean_loss, 4),
        "attacks": attacks,
        "faults": faults,
        "targets": {"loss_vs_clean_at_20pct": LOSS_TOLERANCE, "versions_lost": 0},
        "pass": {
            "loss_within_20pct_at_20pct": all(v["within_20pct"] for v in at20.values()),
            "adversaries_below_honest_at_20pct": all(
                v["adversaries_below_honest"] for v in at20.values()
            ),
            "no_version_lost": all(f.get("versions_lost", 0) == 0 for f in faults.values()),
            "resume_same_final_cid": faults["orchestrator_sigkill"]["same_final_cid"]
            == faults["orchestrator_sigkill"]["kills"],
            "ipfs_faults_clear_errors": faults["ipfs_down"]["clear_error"]
            and faults["ipfs_slow"]["clear_error"],
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
