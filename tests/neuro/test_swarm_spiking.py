"""Spiking devices in the swarm, on a real Anvil chain and the embedded store: the devices adapt
by the version's plasticity rule, the fleet learns the weights and the rule, event-driven
devices stay silent until their error grows, and ``chainml verify`` recomputes every version.

Two gasdrift swarm runs are shared by the tests here: the family's default (every device sends
every round) and ``--event-driven``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from web3 import Web3

from chainml.chain.client import Ledger
from chainml.chain.deployments import deployments_path, load_deployments
from chainml.cli.main import main
from chainml.meta.protocols import device_protocol
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import get_family
from chainml.protocol.evidence import gather_round
from chainml.protocol.payloads import VersionFile, decode_version
from chainml.services.chain import LocalChain
from chainml.storage.cid import onchain_to_str
from chainml.storage.store import Store, open_store
from chainml.swarm.config import SwarmConfig
from chainml.swarm.harness import run_swarm

NODES, ROUNDS = 8, 7


@dataclass
class SpikingRun:
    data_dir: Path
    ledger: Ledger
    store: Store
    rows: list[dict[str, Any]]
    nodes: list[dict[str, Any]]

    def version(self, version: int) -> VersionFile:
        cid = onchain_to_str(*self.ledger.version(version).weights)
        return decode_version(self.store.get(cid), "snn-gasdrift")


def _run(
    tmp_path_factory: pytest.TempPathFactory, event_driven: bool | None
) -> Iterator[SpikingRun]:
    data_dir = tmp_path_factory.mktemp("spiking")
    chain = LocalChain(data_dir)
    info = chain.up()
    try:
        config = SwarmConfig(
            nodes=NODES, rounds=ROUNDS, task="gasdrift", eval_tasks=100, event_driven=event_driven
        )
        rows = run_swarm(
            config,
            data_dir=data_dir,
            run_dir=data_dir / "run",
            rpc_url=info.url,
            ipfs="embedded",
            workers=2,
            show_progress=False,
        )
        deployments = load_deployments(deployments_path(data_dir))
        assert deployments is not None
        ledger = Ledger.from_deployments(Web3(Web3.HTTPProvider(info.url)), deployments)
        lines = (data_dir / "run" / "nodes.jsonl").read_text().splitlines()
        nodes = [json.loads(line) for line in lines if line]
        yield SpikingRun(data_dir, ledger, open_store("embedded", data_dir), rows, nodes)
    finally:
        chain.down()


@pytest.fixture(scope="module")
def spiking_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpikingRun]:
    yield from _run(tmp_path_factory, None)


@pytest.fixture(scope="module")
def event_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpikingRun]:
    yield from _run(tmp_path_factory, True)


@pytest.mark.slow
def test_the_fleet_learns_weights_and_rule_and_beats_genesis(spiking_run: SpikingRun) -> None:
    """Every version carries the rule and the spiking recipe; the final version's devices,
    running its rule on the chip, beat the genesis's on held-out tasks."""
    assert [r["status"] for r in spiking_run.rows] == ["finalized"] * ROUNDS
    assert all(r["committed"] == NODES and r["events"]["silent"] == 0 for r in spiking_run.rows)
    genesis = spiking_run.version(0)
    final = spiking_run.version(ROUNDS)
    wanted = Recipe.for_family("gasdrift", aggregation="guard")
    assert genesis.recipe == final.recipe == wanted and wanted.spiking is not None
    assert wanted.spiking.chip_bits == 8 and wanted.spiking.synaptic_sigma > 0
    rule = [k for k in final.params if k.startswith("rule.")]
    assert {k.split(".")[1] for k in rule} == {"alpha", "log_eta", "feedback"}
    assert all(not torch.equal(final.params[k], genesis.params[k]) for k in rule)

    family = get_family("gasdrift")
    loss = {
        name: device_protocol(v.params, family, v.recipe, n_tasks=200, seed=0)[0]
        for name, v in (("genesis", genesis), ("final", final))
    }
    assert loss["final"] < 0.6 * loss["genesis"], loss


@pytest.mark.slow
def test_event_driven_devices_send_only_on_their_trigger(event_run: SpikingRun) -> None:
    """Round 1: every device calibrates and sends. Afterwards devices stay silent while their
    error is settled (no update, no download), never longer than the recipe's limit, and the
    round metrics account the energy and radio the silent ones saved."""
    rows, nodes = event_run.rows, event_run.nodes
    recipe = event_run.version(0).recipe
    assert recipe.spiking is not None and recipe.spiking.event_ratio is not None
    assert rows[0]["status"] == "finalized" and rows[0]["events"]["sent"] == NODES
    by_node: dict[int, list[str]] = {}
    for row in sorted(nodes, key=lambda r: r["round"]):
        by_node.setdefault(row["index"], []).append(row["status"])
    silent_total = sum(s.count("silent") for s in by_node.values())
    assert silent_total > NODES  # most device-rounds after calibration are silent
    assert sum(s.count("included") for s in by_node.values()) > NODES  # some sent again
    limit = recipe.spiking.max_silent
    for states in by_node.values():
        run = longest = 0
        for state in states:
            run = run + 1 if state == "silent" else 0
            longest = max(longest, run)
        assert longest < limit
    silent_rows = [n for n in nodes if n["status"] == "silent"]
    assert all(n["bytes_up"] == 0 and n["bytes_down"] == 0 for n in silent_rows)
    # A device that sat rounds out sends one update over the samples of all of them.
    shots, memory = recipe.support_shots, recipe.spiking.update_memory
    samples = [
        u.num_samples
        for row in rows[1:]
        if row["status"] == "finalized"
        for u in gather_round(event_run.ledger, event_run.store, row["round"]).updates
    ]
    assert max(samples) > shots
    assert all(s % shots == 0 and s <= memory * shots for s in samples)
    sent_energy = np.mean([n["energy_j"] for n in nodes if n["status"] == "included"])
    assert max(n["energy_j"] for n in silent_rows) < 0.1 * sent_energy
    for row in rows:
        if row["status"] != "finalized":  # every device sat the round out: closed, no version
            assert row["committed"] == 0 and row["events"]["silent"] == NODES
            continue
        events = row["events"]
        assert events["sent"] + events["silent"] == NODES
        assert events["sent"] == row["committed"]
        if events["silent"]:
            assert events["saved_energy_j"] > 0 and events["saved_radio_bytes"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("which", ["spiking_run", "event_run"])
def test_verify_recomputes_every_spiking_version(
    which: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    run: SpikingRun = request.getfixturevalue(which)
    code = main(["--data-dir", str(run.data_dir), "verify"])
    out = capsys.readouterr().out
    assert code == 0, out
    finalized = sum(r["status"] == "finalized" for r in run.rows)
    assert finalized >= 2
    assert f"verify: OK ({finalized} finalized versions recomputed)" in out
