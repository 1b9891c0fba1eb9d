"""Losing the chain mid-round gives one clear line (ChainError), not a requests traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from chainml.errors import ChainError
from chainml.services.chain import LocalChain
from chainml.swarm.config import SwarmConfig
from chainml.swarm.executor import make_executor
from chainml.swarm.orchestrator import Swarm
from chainml.swarm.services import connect
from tests.security.conftest import SwarmEnv


def _swarm_losing_its_chain(env: SwarmEnv, name: str) -> Swarm:
    config = SwarmConfig(nodes=3, rounds=1, mode="relayed")
    services = connect(
        env.rpc_url, env.data_dir, "embedded", task=config.task, seed=config.seed,
        recipe=config.recipe(),
    )  # fmt: skip
    chain = LocalChain(env.data_dir)

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "devices adapt" and done == total:
            chain.down()  # the chain goes away between two of the round's transactions

    executor = make_executor(1, "pool")
    swarm = Swarm(config, services, env.data_dir / "runs" / name, executor, progress=progress)
    swarm._executor_for_test = executor  # type: ignore[attr-defined]
    return swarm


@pytest.mark.slow
def test_lost_chain_is_one_line_chain_error(make_env: Callable[[str], SwarmEnv]) -> None:
    # Undefended (the wave-1 loop, unwrapped): the raw requests exception escapes.
    swarm = _swarm_losing_its_chain(make_env("raw"), "raw")
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            swarm._run(None)
    finally:
        swarm._executor_for_test.close()  # type: ignore[attr-defined]

    env = make_env("wrapped")
    swarm = _swarm_losing_its_chain(env, "wrapped")
    try:
        with pytest.raises(ChainError) as exc:
            swarm.run()
    finally:
        swarm._executor_for_test.close()  # type: ignore[attr-defined]
    message = str(exc.value)
    assert "\n" not in message and env.rpc_url in message and "resume" in message
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
