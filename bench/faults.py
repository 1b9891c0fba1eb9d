"""Reliability report: every attack at 10/20/30% adversaries on a fleet that learns, and every
operational fault.

Three runs per attack, all with the same seed: *clean* (the default defence, no attack),
*undefended* (the attack against the plain mean) and *defended* (the attack against the default
defence, ``guard``). Losses are the device protocol's MSE on sine (the same 2,000 held-out tasks
for every run), averaged over the run's last 10 versions; the three runs are repeated for
``--seeds`` seeds (fleet, tasks, adversaries and data draws all change with the seed) and each
loss is the mean over the seeds. One seed is not enough: a run's trajectory is chaotic: with one
node of 50 free-riding, the loss was 0.78x to 1.80x the clean run's, seed by seed, far beyond
the 1.2x criterion. No defence can beat the *absent* run (the attackers free-ride and are left
out, so the fleet learns from fewer nodes and tasks: on 100 nodes 1.30x / 0.92x / 0.87x the
clean loss at 10 / 20 / 30%, 3 seeds; on 50 nodes it was 1.51x / 1.32x / 1.17x);
``defended_vs_absent`` is the defence's own share of the harm. ``clean_heterogeneity`` says how far
the clean run's honest updates spread around their mean, and so how much bias an attacker can hide
in that spread whatever the rule (:func:`heterogeneity_report`). The full matrix runs through the
swarm's in-process twin (:func:`chainml.swarm.attacks.simulate_attack`: the same node step,
attacks, screening, strategy and server step); the 20% row of ``--swarm-attacks`` also runs through
the real swarm (Anvil, the embedded store, signed commitments, aggregator and validators) on a
smaller fleet, beside the twin on that same fleet, so that the two can be compared. Every entry
says which path produced it. Protocol-level attacks (stale, replay, bad_aggregator) exist only in
the swarm; their harm is not the loss (``NO_LOSS_HARM``), and each entry says whether the defended
run shows any of it.
Validator-side attacks (vote copying, reveal withholding, colluding validators) run through the
real voting contract with a dishonest minority (the defence must hold) and a dishonest majority
(the run where they hurt). Faults report rounds finalized and closed, versions lost (must be 0),
processes left by kill -9 of a running swarm (``orphans_after_kill``), versions lost when Anvil
is killed as each finalization is reported (``versions_lost_on_anvil_kill``) and, where a run is
interrupted, whether the resumed run reaches the same final CID as an uninterrupted one.
Prints tables, then one JSON object as the last line.

    python bench/faults.py [--quick] [--skip-faults] [--skip-validators] [--jobs 2]
        [--seeds 3] [--rounds 50] [--swarm-attacks stale,replay,bad_aggregator] [--kills 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: a pool of BLAS threads per
# process only fights the other runs for the 2 cores (the collusion screen ran 25x slower)

import argparse
import json
import math
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from statistics import mean, median
from typing import Any

import torch
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.cli.swarm_cmd import run_swarm
from chainml.errors import ChainMLError, MetaLearningError
from chainml.meta.protocols import device_protocol
from chainml.meta.tasks import get_family
from chainml.protocol.payloads import decode_version
from chainml.services.chain import LocalChain
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import open_store
from chainml.swarm.attacks import (
    ATTACKS,
    CRAFTED,
    UPDATE_ATTACKS,
    adversary_indices,
    simulate_attack,
)
from chainml.swarm.config import SwarmConfig

NODES, ROUNDS = 20, 5
"""Fleet of the operational fault checks."""
TWIN_NODES, TWIN_ROUNDS = 100, 50
"""Fleet of the twin matrix. Each device holds one task for good, so the fleet's task coverage
is its size: at 50 nodes, merely leaving 20% out cost 1.32x the clean loss (3 seeds), beyond
the 1.2x criterion before any attack; at 100 nodes the same absent run scored 0.92x."""
SWARM_NODES, SWARM_ROUNDS = 20, 8
LAST_VERSIONS = 10
"""A run's loss is the mean device-protocol MSE of its last 10 versions: single versions of a
young run swing by +-40% from round to round, which would swamp the 1.2x criterion."""
SEEDS = 3
"""Seeds per triple (clean, undefended, defended); losses are means over them."""
DEFENCE = "guard"
FRACTIONS = (0.1, 0.2, 0.3)
EVAL_TASKS = 2_000
TARGETS = {"clean_loss": 0.5, "undefended_x": 2.0, "defended_x": 1.2, "honest_excluded": 0.01}
TARGETS_JSON = TARGETS | {"undefended_x": {"min": TARGETS["undefended_x"]}}
"""The targets as the report states them: the undefended loss is a lower bound (an attack must
hurt), every other figure an upper one (``python -m chainml.benchtable`` reads this form)."""
SWARM_ONLY = ("stale", "replay", "bad_aggregator")
NO_LOSS_HARM = {
    "freeride": "reputation gained without work (an all-zero update counted as a contribution)",
    "stale": "an update computed on an old version admitted into the aggregate",
    "replay": "an old, re-signed commitment admitted into the aggregate",
    "bad_aggregator": "a forged aggregate finalized as a version",
}
"""Attacks whose harm is not the model's loss: what each would do if nothing stopped it (the
entry's ``harm_stopped`` says whether the defended run shows none of it)."""
DIVERGED_LOSS = 1e6
"""The loss a run is given when the attack drove the model to NaN (its entry says "diverged")."""


@dataclass
class Env:
    data_dir: Path
    chain: LocalChain
    url: str

    def run(
        self,
        config: SwarmConfig,
        name: str = "run",
        ipfs: str = "embedded",
        compose: Callable[[Any], None] | None = None,
    ) -> list[dict]:
        return run_swarm(
            config,
            data_dir=self.data_dir,
            run_dir=self.data_dir / name,
            rpc_url=self.url,
            ipfs=ipfs,
            workers=1,
            show_progress=False,
            compose=compose,
        )

    def ledger(self) -> Ledger:
        deployments = load_deployments(deployments_path(self.data_dir))
        assert deployments is not None
        return Ledger.from_deployments(Web3(Web3.HTTPProvider(self.url)), deployments)

    def versions(self) -> list[str]:
        ledger = self.ledger()
        return [
            onchain_to_str(*ledger.version(v).weights) for v in range(ledger.current_version() + 1)
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


def device_loss(versions: list[Any], recipe: Any) -> float:
    """Device-protocol MSE on sine (the same held-out tasks for every run), averaged over the
    run's last versions."""
    family = get_family("sine")
    return mean(
        float(device_protocol(p, family, recipe, n_tasks=EVAL_TASKS, seed=0)[0]) for p in versions
    )


def recipe_for(rule: str, nodes: int) -> Any:
    return SwarmConfig(nodes=nodes, aggregation=rule).recipe()


def twin_run(
    attack: str | None, fraction: float, rule: str, nodes: int, rounds: int, seed: int = 0
) -> dict[str, Any]:
    """One run of the in-process twin: final loss, exclusions and reputations by group."""
    recipe = recipe_for(rule, nodes)
    adversaries = adversary_indices(nodes, fraction, seed) if attack else frozenset()
    try:
        run = simulate_attack(
            get_family("sine"),
            "mlp-sine",
            recipe,
            rounds=rounds,
            nodes=nodes,
            fraction=fraction if attack else 0.0,
            attack=attack,
            keep_last=LAST_VERSIONS,
            seed=seed,
        )
    except MetaLearningError as exc:  # the attack made the model diverge: honest steps overflow
        if "diverged" not in str(exc):
            raise
        return {
            "loss": DIVERGED_LOSS,
            "diverged": True,
            "honest_excluded": 0.0,
            "adversaries_excluded": 0.0,
            "honest_reputation": 0.0,
            "adversary_reputation": None,
            "heterogeneity": None,
        }
    honest = [i for i in range(nodes) if i not in adversaries]
    return {
        "loss": device_loss(run.recent, recipe),
        "honest_excluded": sum(run.excluded[i] for i in honest) / (len(honest) * rounds),
        "adversaries_excluded": (
            sum(run.excluded[i] for i in adversaries) / (len(adversaries) * rounds)
            if adversaries
            else 0.0
        ),
        "honest_reputation": mean(run.reputation[i] for i in honest),
        "adversary_reputation": (
            mean(run.reputation[i] for i in adversaries) if adversaries else None
        ),
        "heterogeneity": median(run.heterogeneity) if run.heterogeneity else None,
    }


def heterogeneity_report(ratio: float, fractions: tuple[float, ...]) -> dict[str, Any]:
    """The clean fleet's heterogeneity and what it lets an attacker do to any rule.

    ``bias_order_over_signal``: ``sqrt(delta * zeta^2 / |g|^2)`` per adversary fraction
    ``delta``, the order (constant omitted) of the shift an attacker inside the honest spread
    can force on every aggregation rule (:func:`chainml.swarm.attacks.heterogeneity`), in
    units of the honest mean update. Well above 1, the attacker can outweigh the honest signal
    of a round whatever the rule; only information beyond one round's updates can separate it.
    """
    return {
        "zeta2_over_mean2": round(ratio, 2),
        "of": "honest updates of the clean run: median over rounds, mean over seeds",
        "bias_order_over_signal": {f"{f:g}": round(math.sqrt(f * ratio), 2) for f in fractions},
    }


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One job's runs over the seeds: means of the numbers, each seed's loss kept beside."""
    out: dict[str, Any] = {"loss_by_seed": [round(r["loss"], 4) for r in runs]}
    for key in {k for r in runs for k in r}:
        values = [r.get(key) for r in runs]
        if key == "diverged":
            out[key] = any(values)
        elif all(v is None for v in values):
            out[key] = None
        else:
            out[key] = mean(v for v in values if v is not None)
    return out


def swarm_run(
    attack: str | None, fraction: float, rule: str, nodes: int, rounds: int
) -> dict[str, Any]:
    """The same, through the real swarm on a fresh Anvil and store."""
    cfg = SwarmConfig(
        nodes=nodes,
        rounds=rounds,
        aggregation=rule,
        adversaries=fraction if attack else 0.0,
        attack=attack,
    )
    with env() as e:
        rows = e.run(cfg)
        nodes_log = node_rows(e)
        finalized = [r for r in rows if r["status"] == "finalized"]
        first_accepted = first_proposals_accepted(e.ledger(), [r["round"] for r in rows])
        store = open_store("embedded", e.data_dir)
        last_versions = [
            decode_version(store.get(r["aggregate_cid"])) for r in finalized[-LAST_VERSIONS:]
        ]
    last = [r for r in nodes_log if r["round"] == rows[-1]["round"]]
    honest_rows = [r for r in nodes_log if not r["adversary"]]
    adv_rows = [r for r in nodes_log if r["adversary"]]
    adv_last = [r["reputation"] for r in last if r["adversary"]]
    return {
        "loss": device_loss([v.params for v in last_versions], last_versions[-1].recipe),
        "honest_excluded": sum(r["status"] == "excluded" for r in honest_rows)
        / max(len(honest_rows), 1),
        "adversaries_excluded": (
            sum(r["status"] != "included" for r in adv_rows) / len(adv_rows) if adv_rows else 0.0
        ),
        "honest_reputation": mean(r["reputation"] for r in last if not r["adversary"]),
        "adversary_reputation": mean(adv_last) if adv_last else None,
        "rounds_finalized": len(finalized),
        "first_proposals_accepted": first_accepted,
    }


def first_proposals_accepted(ledger: Ledger, rounds: list[int]) -> int:
    """Rounds whose first proposal was accepted (with ``bad_aggregator``, the forged one)."""
    from chainml.chain.types import ProposalStatus

    accepted = 0
    for round_id in rounds:
        events = ledger.proposals(round_id)
        if events:
            status = ledger.proposal(events[0].proposal_id).status
            accepted += status == ProposalStatus.ACCEPTED
    return accepted


def attack_entry(
    clean: dict[str, Any], undefended: dict[str, Any], defended: dict[str, Any], path: str
) -> dict[str, Any]:
    c, u, d = clean["loss"], undefended["loss"], defended["loss"]
    adv, hon = defended["adversary_reputation"], defended["honest_reputation"]
    runs = {"clean": clean, "undefended": undefended, "defended": defended}
    return {
        "path": path,
        "clean_loss": round(c, 4),
        "undefended_loss": round(u, 4),
        "defended_loss": round(d, 4),
        "undefended_x": round(u / c, 3),
        "defended_x": round(d / c, 3),
        "honest_excluded_fraction": round(defended["honest_excluded"], 4),
        "loss_by_seed": {
            name: run["loss_by_seed"] for name, run in runs.items() if "loss_by_seed" in run
        },
        "adversaries_excluded_fraction": round(defended["adversaries_excluded"], 4),
        "adversaries_below_honest": adv is not None and adv < hon,
        "diverged": [name for name in ("undefended", "defended") if runs[name].get("diverged")],
        "hurts_undefended": u >= TARGETS["undefended_x"] * c,
        "defence_holds": d <= TARGETS["defended_x"] * c,
    }


def swarm_attack_entry(attack: str, clean: dict[str, Any], nodes: int, rounds: int) -> dict:
    """The swarm's three runs (clean shared) for ``attack`` at 20%."""
    if attack == "bad_aggregator":  # not a node attack: the defence is the validators' vote
        run = swarm_run(attack, 0.2, DEFENCE, nodes, rounds)
        return attack_entry(clean, run, run, "swarm") | {
            "rounds_finalized": run["rounds_finalized"],
            "harm": NO_LOSS_HARM[attack],
            "forged_versions_finalized": run["first_proposals_accepted"],
            "harm_stopped": run["first_proposals_accepted"] == 0,
            "harm_undefended": "see validator_attacks: with 2 of 3 validators copying or "
            "colluding, the forged version is finalized",
        }
    undefended = swarm_run(attack, 0.2, "mean", nodes, rounds)
    defended = swarm_run(attack, 0.2, DEFENCE, nodes, rounds)
    entry = attack_entry(clean, undefended, defended, "swarm") | {
        "rounds_finalized": defended["rounds_finalized"]
    }
    if attack in NO_LOSS_HARM:  # stale, replay: stopped by the ledger's checks, for any rule
        entry |= {
            "harm": NO_LOSS_HARM[attack],
            "adversary_updates_admitted_fraction": round(1 - defended["adversaries_excluded"], 4),
            "adversary_updates_admitted_fraction_mean_rule": round(
                1 - undefended["adversaries_excluded"], 4
            ),
            "harm_stopped": defended["adversaries_excluded"] == 1.0,
        }
    return entry


VALIDATOR_NODES, VALIDATOR_ROUNDS = 6, 2


def validator_attack_run(attack: str, dishonest: int) -> dict[str, Any]:
    """``dishonest`` of the 3 validators run ``attack`` (through the real voting contract);
    the aggregator forges its first proposal of every round (except for ``withhold``, whose
    harm is a stalled round, not a forgery). Reports what passed."""
    from chainml.chain.types import ProposalStatus
    from chainml.swarm.validator_attacks import composer, forfeit_withheld

    forger = attack != "withhold"
    rounds = VALIDATOR_ROUNDS if dishonest == 1 else 1
    cfg = SwarmConfig(
        nodes=VALIDATOR_NODES,
        rounds=rounds,
        mode="relayed",
        attack="bad_aggregator" if forger else None,
    )
    seen: dict[str, Any] = {}

    def compose(swarm: Any) -> None:
        composer(attack, dishonest)(swarm)
        seen["swarm"] = swarm

    with env() as e:
        rows = e.run(cfg, compose=compose)
        ledger = e.ledger()
        first = [ledger.proposal(ledger.proposals(r["round"])[0].proposal_id).status for r in rows]
        out: dict[str, Any] = {
            "dishonest_validators": dishonest,
            "validators": 3,
            "rounds": rounds,
            "rounds_finalized": sum(r["status"] == "finalized" for r in rows),
            "forged_versions_finalized": sum(s == ProposalStatus.ACCEPTED for s in first)
            if forger
            else 0,
        }
        if attack == "withhold":
            swarm = seen["swarm"]
            addresses = [v.address for v in swarm.validators]
            w3 = ledger.w3
            last = max(ledger.proposal(p.proposal_id).reveal_deadline
                       for r in rows for p in ledger.proposals(r["round"]))  # fmt: skip
            now = int(w3.eth.get_block("latest")["timestamp"])
            w3.provider.make_request("evm_increaseTime", [max(last - now + 1, 0)])
            w3.provider.make_request("evm_mine", [])
            unpenalized = ledger.reputation_of(addresses[0])
            forfeited = forfeit_withheld(ledger, addresses, swarm.s.admin)
            out |= {
                "withholder_reputation_before_forfeit": unpenalized,
                "honest_validator_reputation": ledger.reputation_of(addresses[-1]),
                "withholder_reputation_after_forfeit": ledger.reputation_of(addresses[0]),
                "votes_forfeited": len(forfeited),
                "honest_votes_forfeited": sum(
                    v.lower() not in {a.lower() for a in addresses[:dishonest]}
                    for _, v in forfeited
                ),
            }
        if attack == "copy":
            copier = seen["swarm"].validators[0]
            out |= {
                "votes_copied_from_peers": copier.copied_from_peers,
                "blind_votes": copier.blind,
            }
        return out


def validator_attacks() -> dict[str, Any]:
    """Each validator-side attack by a minority (1 of 3: the defence must hold) and by a
    majority (2 of 3: the run where it hurts, beyond what any quorum rule can stop)."""
    out = {}
    for attack in ("copy", "withhold", "collude"):
        minority = validator_attack_run(attack, 1)
        majority = validator_attack_run(attack, 2)
        if attack == "withhold":
            holds = (
                minority["rounds_finalized"] == minority["rounds"]
                and minority["withholder_reputation_after_forfeit"]
                < minority["honest_validator_reputation"]
                and minority["honest_votes_forfeited"] == 0
            )
            hurts = majority["rounds_finalized"] < majority["rounds"]
            harm = "rounds stalled (no version) and, without forfeitVote, no cost to the withholder"
        else:
            holds = (
                minority["rounds_finalized"] == minority["rounds"]
                and minority["forged_versions_finalized"] == 0
            )
            hurts = majority["forged_versions_finalized"] > 0
            harm = "a forged aggregate finalized as a version"
        out[attack] = {
            "harm": harm,
            "minority": minority,
            "majority": majority,
            "defence_holds_against_minority": holds,
            "hurts_with_a_majority": hurts,
        }
    return out


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
    """The gateway's first Merkle root lands, then it loses power before the others go out."""
    real_post = Ledger.post_batches

    def crashing(self: Ledger, round_id: int, batches: Any, sender: Any) -> Any:
        real_post(self, round_id, batches[:1], sender)
        raise ConnectionError("gateway crashed mid-batch")

    cfg = config(merkle_batch=8)
    with env() as e:
        Ledger.post_batches = crashing  # type: ignore[method-assign]
        error = ""
        try:
            e.run(cfg)
        except ConnectionError as exc:
            error = str(exc)
        finally:
            Ledger.post_batches = real_post  # type: ignore[method-assign]
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


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int
    """Start time in clock ticks since boot: with the PID, it names one process for good."""
    sid: int
    ppid: int
    cmdline: str


def _proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return Proc(pid, int(fields[19]), int(fields[3]), int(fields[1]), cmd)


def _all_procs() -> list[Proc]:
    found = (_proc(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [p for p in found if p is not None]


def _ours(victim: int, seen: list[Proc]) -> list[Proc]:
    """What is left of ``victim``'s tree as seen before the kill, plus anything in its session
    (an orphan that init adopted keeps the session)."""
    alive = [p for p in seen if (now := _proc(p.pid)) is not None and now.start == p.start]
    alive += [p for p in _all_procs() if p.sid == victim and p.pid != victim]
    return list({p.pid: p for p in alive}.values())


def _descendants(pid: int) -> list[Proc]:
    procs = _all_procs()
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for p in procs:
            if p.ppid == parent:
                out.append(p)
                todo.append(p.pid)
    return out


def _poll(ok: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ok():
            return True
        time.sleep(0.1)  # polling another process's progress: no event to wait on
    return bool(ok())


def fault_orphans_after_kill() -> dict[str, Any]:
    """kill -9 of ``chainml swarm run`` mid-round (2 pool workers running): the processes of
    ours still alive 20 s later (its process tree before the kill, and its session)."""
    with env() as e:
        cfg = config(nodes=8, rounds=3)
        argv = [*swarm_argv(e, cfg)]
        argv[argv.index("--workers") + 1] = "2"
        victim = subprocess.Popen(
            argv,
            env={**os.environ, "CHAINML_IPFS": "embedded"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def mid_round() -> bool:
            workers = [p for p in _descendants(victim.pid) if "multiprocessing" in p.cmdline]
            opened = (e.data_dir / "run" / "opened.jsonl").exists()
            return victim.poll() is not None or (len(workers) >= 2 and opened)

        _poll(mid_round, 300)
        tree = _descendants(victim.pid)
        workers = sum("multiprocessing" in p.cmdline for p in tree)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        _poll(lambda: not _ours(victim.pid, tree), 20)
        left = _ours(victim.pid, tree)
        for p in left:  # our own leftovers, by PID and start time
            os.kill(p.pid, signal.SIGKILL)
        return {
            "processes_before_kill": len(tree),
            "pool_processes_before_kill": workers,
            "left_after_20s": len(left),
            "left": [p.cmdline[:80] for p in left],
        }


def _finalized_rows(rounds_log: Path) -> list[dict[str, Any]]:
    if not rounds_log.exists():
        return []
    rows = [json.loads(line) for line in rounds_log.read_text().splitlines() if line]
    return [r for r in rows if r["status"] == "finalized"]


def fault_anvil_kill_after_finalization(kills: int = 2) -> dict[str, Any]:
    """Kill Anvil (SIGKILL) the moment the swarm reports a finalized round, restart it from its
    state, resume the run; repeat. A version is lost if a reported finalization is not on the
    restarted chain with the reported weights."""
    cfg = config(rounds=kills + 1)
    lost = 0
    reported: list[dict[str, Any]] = []
    with env() as e:
        rounds_log = e.data_dir / "run" / "rounds.jsonl"
        for _ in range(kills):
            proc = subprocess.Popen(
                swarm_argv(e, cfg),
                env={**os.environ, "CHAINML_IPFS": "embedded"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            before = len(reported)
            _poll(
                lambda p=proc, n=before: (
                    len(_finalized_rows(rounds_log)) > n or p.poll() is not None
                ),
                600,
            )
            info = e.chain.info()
            assert info is not None
            os.kill(info.pid, signal.SIGKILL)
            os.waitpid(info.pid, 0)  # Anvil is our child: reap it, so it is surely gone
            proc.wait(timeout=300)  # the swarm stops on the lost chain (a one-line error)
            reported = _finalized_rows(rounds_log)
            e.url = e.chain.up().url
            on_chain = e.versions()
            lost = sum(
                r["version"] >= len(on_chain) or on_chain[r["version"]] != r["aggregate_cid"]
                for r in reported
            )
            if lost:
                break
        rows = e.run(cfg)
        return {
            "kills": kills,
            "finalizations_reported_before_kills": len(reported),
            "versions_lost": lost,
            "resumed_to_the_end": sum(r["status"] == "finalized" for r in rows) == cfg.rounds,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20%% only, 3 kills")
    parser.add_argument("--skip-faults", action="store_true", help="attacks only")
    parser.add_argument("--rounds", type=int, default=TWIN_ROUNDS)
    parser.add_argument("--nodes", type=int, default=TWIN_NODES)
    parser.add_argument(
        "--swarm-attacks",
        default="stale,replay,bad_aggregator",
        help="attacks whose 20%% row also runs through the real swarm ('' for none)",
    )
    parser.add_argument(
        "--twin-attacks", default=None, help="attacks of the twin matrix (default all; '' none)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="twin runs in parallel processes")
    parser.add_argument(
        "--seeds", type=int, default=SEEDS, help="seeds per triple (losses: mean over seeds)"
    )
    parser.add_argument("--kills", type=int, default=3, help="orchestrator SIGKILLs to resume")
    parser.add_argument(
        "--skip-validators", action="store_true", help="no validator-side attack runs"
    )
    parser.add_argument("--swarm-nodes", type=int, default=SWARM_NODES)
    parser.add_argument("--swarm-rounds", type=int, default=SWARM_ROUNDS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    fractions = (0.2,) if args.quick else FRACTIONS
    started = time.perf_counter()

    twin_attacks = [a for a in ATTACKS if a in UPDATE_ATTACKS or a in CRAFTED]
    if args.twin_attacks is not None:
        twin_attacks = [a for a in args.twin_attacks.split(",") if a]
    # Every twin run is independent and seeded: run them all up front, ``--jobs`` at a time.
    jobs: list[tuple[str | None, float, str]] = [(None, 0.0, DEFENCE), (None, 0.0, "mean")]
    jobs += [("freeride", f, DEFENCE) for f in fractions] if twin_attacks else []
    jobs += [(a, f, rule) for a in twin_attacks for f in fractions for rule in ("mean", DEFENCE)]
    seeds = range(max(args.seeds, 1))
    with ProcessPoolExecutor(max(args.jobs, 1), mp_context=get_context("spawn")) as pool:
        futures = {
            (job, seed): pool.submit(twin_run, *job, args.nodes, args.rounds, seed)
            for seed in seeds
            for job in jobs
        }
        twin = {job: over_seeds([futures[job, seed].result() for seed in seeds]) for job in jobs}
    clean = twin[(None, 0.0, DEFENCE)]
    clean_mean = twin[(None, 0.0, "mean")]
    print(
        f"twin, {args.nodes} nodes x {args.rounds} rounds: clean loss {clean['loss']:.4f} "
        f"({DEFENCE}), {clean_mean['loss']:.4f} (mean); honest excluded "
        f"{clean['honest_excluded']:.4f}; heterogeneity zeta^2/|g|^2 "
        f"{clean['heterogeneity']:.1f}"
    )
    attacks: dict[str, dict[str, Any]] = {}
    print(f"{'attack':>15} {'adv':>4} {'path':>5} {'clean':>7} {'undef':>7} {'defended':>8} "
          f"{'hon.ex':>7} {'adv.ex':>7} {'adv<hon':>7}")  # fmt: skip

    def show(key: str, r: dict[str, Any]) -> None:
        name, frac = key.split("@")
        print(
            f"{name:>15} {float(frac):>4.0%} {r['path']:>5} {r['clean_loss']:>7.3f} "
            f"{r['undefended_loss']:>7.3f} {r['defended_loss']:>8.3f} "
            f"{r['honest_excluded_fraction']:>7.3f} {r['adversaries_excluded_fraction']:>7.3f} "
            f"{r['adversaries_below_honest']!s:>7}",
            flush=True,
        )

    # The noise floor: the default defence with the attackers merely absent (they free-ride,
    # and every rule leaves empty updates out), so any gap to the clean run is the data lost.
    absent = {f: twin[("freeride", f, DEFENCE)]["loss"] for f in fractions} if twin_attacks else {}
    for attack in twin_attacks:
        for fraction in fractions:
            undefended = twin[(attack, fraction, "mean")]
            defended = twin[(attack, fraction, DEFENCE)]
            key = f"{attack}@{fraction:g}"
            attacks[key] = attack_entry(clean, undefended, defended, "twin") | {
                "absent_loss": round(absent[fraction], 4),
                "defended_vs_absent": round(defended["loss"] / absent[fraction], 3),
            }
            if attack == "freeride":  # the harm is reputation without work, not loss
                attacks[key] |= {
                    "harm": NO_LOSS_HARM[attack],
                    "harm_stopped": defended["adversaries_excluded"] == 1.0
                    and attacks[key]["adversaries_below_honest"],
                    "adversaries_excluded_fraction_mean_rule": round(
                        undefended["adversaries_excluded"], 4
                    ),
                }
            show(key, attacks[key])

    swarm: dict[str, Any] = {}
    chosen = [a for a in args.swarm_attacks.split(",") if a]
    if chosen:
        n, r = args.swarm_nodes, args.swarm_rounds
        swarm_clean = swarm_run(None, 0.0, DEFENCE, n, r)
        twin_clean = twin_run(None, 0.0, DEFENCE, n, r)
        swarm = {"nodes": n, "rounds": r, "attacks": {}, "twin_same_fleet": {}}
        for attack in chosen:
            key = f"{attack}@0.2"
            entry = swarm_attack_entry(attack, swarm_clean, n, r)
            swarm["attacks"][key] = entry
            show(key, entry)
            if attack in SWARM_ONLY:
                attacks[key] = entry | {"fleet": f"{n} nodes x {r} rounds"}
            else:
                same_fleet = attack_entry(
                    twin_clean,
                    twin_run(attack, 0.2, "mean", n, r),
                    twin_run(attack, 0.2, DEFENCE, n, r),
                    "twin",
                )
                swarm["twin_same_fleet"][key] = same_fleet
                show(key, same_fleet)

    validators: dict[str, Any] = {}
    if not args.skip_validators:
        validators = validator_attacks()
        for name, result in validators.items():
            print(f"validator {name:>9}: {json.dumps(result)}")

    faults: dict[str, Any] = {"orphans_after_kill": None, "versions_lost_on_anvil_kill": None}
    if not args.skip_faults:
        orphans = fault_orphans_after_kill()
        anvil_kill = fault_anvil_kill_after_finalization()
        faults |= {
            "orphans_after_kill": orphans["left_after_20s"],
            "versions_lost_on_anvil_kill": anvil_kill["versions_lost"],
            "kill_9_mid_round": orphans,
            "anvil_kill_after_finalization": anvil_kill,
        }
        with env() as e:
            e.run(config(nodes=10, rounds=3))
            reference_small = e.versions()
        with env() as e:
            e.run(config(merkle_batch=8))
            reference = e.versions()
        faults |= {
            "dropout_30pct": fault_dropout(),
            "gateway_crash_mid_batch": fault_gateway_crash(reference),
            "ipfs_down": fault_ipfs("down"),
            "ipfs_slow": fault_ipfs("slow"),
            "anvil_sigkill_restart": fault_anvil_restart(),
            "orchestrator_sigkill": fault_orchestrator_kills(
                3 if args.quick else args.kills, reference_small
            ),
        }
        for name, result in faults.items():
            print(f"{name:>26}: {json.dumps(result)}")

    at20 = {k: v for k, v in attacks.items() if k.endswith("@0.2")}
    node_level = {k: v for k, v in at20.items() if k.split("@")[0] not in NO_LOSS_HARM}
    failing = {  # which entries miss each check (the verdicts under "pass" are these, empty)
        "attack_not_hurting_undefended": sorted(
            k for k, v in node_level.items() if not v["hurts_undefended"]
        ),
        "defence_failing": sorted(k for k, v in node_level.items() if not v["defence_holds"]),
        "harm_not_stopped": sorted(
            k
            for k, v in at20.items()
            if k.split("@")[0] in NO_LOSS_HARM and not v.get("harm_stopped", False)
        ),
        "validator_defence_failing": sorted(
            k for k, v in validators.items() if not v["defence_holds_against_minority"]
        ),
        "validator_attack_never_hurting": sorted(
            k for k, v in validators.items() if not v["hurts_with_a_majority"]
        ),
    }
    summary = {
        "bench": "faults",
        "defence": DEFENCE,
        "undefended": "mean",
        "twin": {"nodes": args.nodes, "rounds": args.rounds, "path": "simulate_attack"},
        "loss_of": f"device protocol (sine, {EVAL_TASKS} tasks), mean of the last "
        f"{LAST_VERSIONS} versions, mean over {len(seeds)} seeds",
        "seeds": len(seeds),
        "clean_loss": round(clean["loss"], 4),
        "clean_loss_mean_rule": round(clean_mean["loss"], 4),
        "clean_honest_excluded_fraction": round(clean["honest_excluded"], 4),
        "absent_loss": {f"{f:g}": round(v, 4) for f, v in absent.items()},
        "clean_heterogeneity": heterogeneity_report(clean["heterogeneity"], FRACTIONS),
        "attacks": attacks,
        "swarm": swarm,
        "faults": faults,
        "validator_attacks": validators,
        "harm_not_loss": NO_LOSS_HARM,
        "targets": TARGETS_JSON,
        "failing_at_20pct": failing,
        "pass": {
            "clean_loss": clean["loss"] <= TARGETS["clean_loss"],
            "clean_honest_excluded": clean["honest_excluded"] <= TARGETS["honest_excluded"],
            "honest_excluded_at_20pct": all(
                v["honest_excluded_fraction"] <= TARGETS["honest_excluded"] for v in at20.values()
            ),
            **{f"no_{name}": not keys for name, keys in failing.items()},
            "orphans_after_kill": None
            if faults["orphans_after_kill"] is None
            else faults["orphans_after_kill"] == 0,
            "versions_lost_on_anvil_kill": None
            if faults["versions_lost_on_anvil_kill"] is None
            else faults["versions_lost_on_anvil_kill"] == 0,
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if faults.get("orchestrator_sigkill"):
        summary["pass"] |= {
            "no_version_lost": all(
                f.get("versions_lost", 0) == 0 for f in faults.values() if isinstance(f, dict)
            ),
            "resume_same_final_cid": faults["orchestrator_sigkill"]["same_final_cid"]
            == faults["orchestrator_sigkill"]["kills"],
            "ipfs_faults_clear_errors": faults["ipfs_down"]["clear_error"]
            and faults["ipfs_slow"]["clear_error"],
        }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
