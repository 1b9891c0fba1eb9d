"""Flower's own simulation of the peer workload: FedAvg over N clients, one sine task each.

Runs in the Flower bench environment (``make bench-setup`` builds ``.venv-flower`` from
``bench/flower/requirements.lock``: ``flwr[simulation]==1.42.0`` pins ``ray==2.55.1``, which
cannot share chainml's environment and its ``ray==2.60.0``), so it imports nothing from chainml.

The workload, as ``bench/peer_flower.py`` describes it: a 1-40-40-1 ReLU MLP (1,761
parameters); client ``i`` holds the sine task ``y = A sin(x - phi)`` with ``A ~ U[0.1, 5]``,
``phi ~ U[0, pi]`` (MAML's family), and each round takes 10 SGD steps on one fresh sample each
(``x ~ U[-5, 5]``, lr 0.01, MSE) and returns its weights with ``num-examples`` 10; the server
runs Flower's ``FedAvg`` over every client (no evaluation rounds). A round's time runs from
``configure_train`` to the end of ``aggregate_train``. Ray runs locally on 127.0.0.1 with
``--workers`` CPUs (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` comes from the caller), and the
script reports any listening socket of its process tree that is not on loopback.

    .venv-flower/bin/python bench/flower/sine_fedavg.py --nodes 100 --rounds 3 [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

LOCAL_STEPS = 10
LOCAL_LR = 0.01
SEED = 0
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def make_model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(1, 40),
        torch.nn.ReLU(),
        torch.nn.Linear(40, 40),
        torch.nn.ReLU(),
        torch.nn.Linear(40, 1),
    )


def sine_task(index: int) -> tuple[float, float]:
    rng = np.random.default_rng([SEED, index])
    return float(rng.uniform(0.1, 5.0)), float(rng.uniform(0.0, np.pi))


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    index = int(context.node_config["partition-id"])
    server_round = int(msg.content["config"]["server-round"])
    amplitude, phase = sine_task(index)
    model = make_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=LOCAL_LR)
    rng = np.random.default_rng([SEED, index, server_round])
    for _ in range(LOCAL_STEPS):
        x = torch.tensor(rng.uniform(-5.0, 5.0, size=(1, 1)), dtype=torch.float32)
        y = amplitude * torch.sin(x - phase)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"num-examples": LOCAL_STEPS, "loss": float(loss)}),
        }
    )
    return Message(content=content, reply_to=msg)


class TimedFedAvg(FedAvg):
    """Flower's FedAvg, timing each round and looking at the sockets once the clients run."""

    def __init__(self, nodes: int) -> None:
        super().__init__(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=nodes,
            min_available_nodes=nodes,
        )
        self.started: dict[int, float] = {}
        self.finished: dict[int, float] = {}
        self.exposed: list[str] = []
        self.listening = 0

    def configure_train(self, server_round, arrays, config, grid):  # type: ignore[no-untyped-def]
        self.started[server_round] = time.perf_counter()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):  # type: ignore[no-untyped-def]
        out = super().aggregate_train(server_round, replies)
        self.finished[server_round] = time.perf_counter()
        if server_round == 1:
            self.listening, self.exposed = listeners(os.getpid())
        return out


def listeners(root: int) -> tuple[int, list[str]]:
    """How many TCP sockets ``root`` and its descendants listen on, and those of them that are
    not bound to loopback."""
    pids = {root}
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(
                int(entry.name)
            )
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            pids.add(child)
            todo.append(child)
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    exposed, count = [], 0
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address = _address(fields[1].split(":")[0], v6)
            count += 1
            if address not in LOOPBACK:
                exposed.append(f"{address} (pid {inodes[fields[9]]})")
    return count, exposed


def _address(hex_ip: str, v6: bool) -> str:
    raw = bytes.fromhex(hex_ip)
    if not v6:
        return ".".join(str(b) for b in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    joined = b"".join(words)
    if joined[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in joined[12:])
    if joined == b"\0" * 15 + b"\x01":
        return "::1"
    return joined.hex()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    strategy = TimedFedAvg(args.nodes)
    server_app = ServerApp()

    @server_app.main()
    def serve(grid: Grid, context: Context) -> None:
        initial = ArrayRecord(make_model().state_dict())
        strategy.start(grid=grid, initial_arrays=initial, num_rounds=args.rounds)

    with tempfile.TemporaryDirectory(prefix="chainml-flower-ray-") as tmp:
        start = time.perf_counter()
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=args.nodes,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {
                    "num_cpus": args.workers,
                    "_node_ip_address": "127.0.0.1",
                    "_temp_dir": tmp,
                    "object_store_memory": 200_000_000,
                    "include_dashboard": False,
                    "log_to_driver": False,
                },
            },
        )
        total = time.perf_counter() - start
    rounds = [
        strategy.finished[r] - strategy.started[r]
        for r in sorted(strategy.finished)
        if r in strategy.started
    ]
    print(
        json.dumps(
            {
                "nodes": args.nodes,
                "rounds": len(rounds),
                "round_s": [round(r, 3) for r in rounds],
                "run_wall_s": round(total, 2),
                "listeners": strategy.listening,
                "non_loopback_listeners": strategy.exposed,
                "flwr": version("flwr"),
                "ray": version("ray"),
                "torch": version("torch"),
            }
        )
    )


if __name__ == "__main__":
    main()
