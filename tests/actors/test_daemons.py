"""Done-when for issue 13: the protocol's parties as separate OS processes, no orchestrator.

One Anvil and one js-ipfs node; an aggregator, a gateway, a challenger and three validators run
as ``chainml <role> run`` daemons, each with its own key (from a key file, never argv); five
devices take part through the node-client library. The test only plays the world around the
protocol: it registers the devices (the admin's job), hands their commitments to the gateway's
inbox, and moves the local chain's clock past the challenge window once the challenger has
checked every batch. A validator is SIGKILLed between its commit and its reveal and started
again: it reveals with the salt it committed with. The round finalizes, reputation is settled,
``chainml verify`` recomputes the version, and no daemon listens on any port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from chainml.actors.inbox import Inbox
from chainml.actors.node import NodeClient
from chainml.chain.keys import dev_node_account
from chainml.chain.records import VoteInfo
from chainml.chain.types import RoundStatus, VoteState
from chainml.meta.tasks import get_family
from chainml.paths import PROJECT_ROOT
from chainml.storage.cid import onchain_to_str
from tests.actors.conftest import ActorNet
from tests.robustness.procs import alive, listeners, read_proc, tree_pids
from tests.robustness.procs import wait_for as _wait_for

NODES = 5
WAIT_S = 180


def wait_for(net: ActorNet, predicate: Callable[[], object], timeout: float, what: str) -> object:
    """``procs.wait_for``, failing at once (with its log) if a daemon died on its own."""

    def check() -> object:
        for d in net.daemons:
            if d.proc.poll() is not None and d.proc.returncode != -signal.SIGKILL:
                raise AssertionError(f"{d.name} exited ({d.proc.returncode}):\n{d.text()[-3000:]}")
        return predicate()

    return _wait_for(check, timeout, what)


def _status(net: ActorNet, round_id: int) -> RoundStatus:
    return RoundStatus(net.ledger.round_info(round_id).status)


def _vote(net: ActorNet, proposal_id: int, role: str) -> VoteInfo:
    return net.ledger.vote_of(proposal_id, net.keys[role].address)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_actor_processes_finalize_a_round_without_an_orchestrator(actor_net: ActorNet) -> None:
    net = actor_net
    ledger = net.ledger
    inbox = Inbox(net.data_dir / "gateway-inbox")
    devices = [dev_node_account(i, "chainml-actors-test-node") for i in range(NODES)]
    ledger.register_nodes(
        [d.address for d in devices],
        [(b"\x00" * 32, 0x55)] * NODES,
        net.w3.eth.accounts[0],
        gateway=net.keys["gateway"].address,
    )

    aggregator = net.start("aggregator", "aggregator", "--close-at", str(NODES), "--rounds", "1")
    gateway = net.start("gateway", "gateway", "--mode", "batched", "--inbox", str(inbox.path))
    challenger = net.start("challenger", "challenger")
    val_a = net.start("validator-a", "validator")
    net.start("validator-b", "validator")

    wait_for(net, lambda: ledger.current_round() == 1, WAIT_S, "the aggregator to open round 1")
    family = get_family("sine")
    for i, device in enumerate(devices):  # each device: its own key, its own data
        client = NodeClient(ledger, net.store, device)
        client.deliver(client.participate(family.task(0, i, "train")), inbox)

    wait_for(
        net,
        lambda: _status(net, 1) == RoundStatus.AGGREGATING,
        WAIT_S,
        "the gateway to post the batch and the aggregator to close the commit phase",
    )
    assert int(ledger.round_info(1).commit_count) == NODES
    batches = [b.batch_id for b in ledger.batches(1)]
    assert batches
    wait_for(
        net,
        lambda: all(
            f"challenger checked batch {b} of round 1" in challenger.text() for b in batches
        ),
        WAIT_S,
        "the challenger to check every batch",
    )
    # The clock is the harness's: move the local chain past the challenge window.
    gap = int(ledger.round_info(1).challenge_end) - int(net.w3.eth.get_block("latest")["timestamp"])
    net.w3.provider.make_request("evm_increaseTime", [max(gap, 0) + 1])
    net.w3.provider.make_request("evm_mine", [])

    proposal = wait_for(
        net, lambda: ledger.pending_proposal(1), WAIT_S, "the aggregator's proposal"
    )
    assert isinstance(proposal, int)
    wait_for(
        net,
        lambda: _vote(net, proposal, "validator-a").state == VoteState.COMMITTED,
        WAIT_S,
        "validator A to commit its vote",
    )
    # Kill validator A between its commit and its reveal (the commit phase cannot end before
    # validator C, not started yet, has committed).
    assert net.stop(val_a, signal.SIGKILL) == -signal.SIGKILL
    assert ledger.proposal(proposal).commit_phase_over is False
    wait_for(
        net,
        lambda: _vote(net, proposal, "validator-b").state == VoteState.COMMITTED,
        WAIT_S,
        "validator B to commit its vote",
    )
    net.start("validator-c", "validator")
    wait_for(net, lambda: _status(net, 1) == RoundStatus.FINALIZED, WAIT_S, "round 1 to finalize")
    assert ledger.current_version() == 1
    assert _vote(net, proposal, "validator-a").state == VoteState.COMMITTED  # still hidden

    # Restarted, validator A derives everything from the chain and its secret file: it reveals
    # exactly what it committed (a yes), although the proposal was decided meanwhile.
    val_a2 = net.start("validator-a", "validator")
    wait_for(
        net,
        lambda: _vote(net, proposal, "validator-a").state == VoteState.REVEALED,
        WAIT_S,
        "the restarted validator A to reveal",
    )
    assert _vote(net, proposal, "validator-a").approve is True
    assert int(ledger.proposal(proposal).yes) == 3

    # No daemon listens on any port, and no key is visible in a command line.
    running = [d for d in net.daemons if d.proc.poll() is None]
    assert {d.name for d in running} == {
        "aggregator", "gateway", "challenger", "validator-a", "validator-b", "validator-c"
    }  # fmt: skip
    pids = [pid for d in running for pid in tree_pids(d.pid)]
    assert listeners(pids) == []
    for pid in pids:
        proc = read_proc(pid)
        for key in net.keys.values():
            assert proc is None or bytes(key.key).hex() not in proc.cmdline

    verify = subprocess.run(
        [sys.executable, "-m", "chainml", "--data-dir", str(net.data_dir), "verify",
         "--rpc-url", net.rpc_url, "--ipfs", net.ipfs_url],
        capture_output=True, text=True, timeout=300, cwd=net.data_dir,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verify: OK (1 finalized versions recomputed)" in verify.stdout
    weights = onchain_to_str(*ledger.version(1).weights)
    assert weights in verify.stdout

    # SIGTERM stops every daemon cleanly, and nothing they started is left behind.
    seen = [p for d in running for pid in tree_pids(d.pid) if (p := read_proc(pid))]
    for daemon in running:
        assert net.stop(daemon) == 0, daemon.text()[-2000:]
    assert alive(seen) == []
    assert val_a2 in running and aggregator in running and gateway in running
