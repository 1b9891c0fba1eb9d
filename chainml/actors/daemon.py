"""The loop every actor daemon runs: wake on each new block, take one step, repeat.

Everything a step does is derived from the chain (and, for a validator, its secret file), so
the loop keeps no state worth saving: SIGTERM or SIGINT stop it between steps, and SIGKILL at
any point followed by a restart carries on from the chain. The loop polls the head with
``eth_blockNumber`` (what web3's block filters do underneath; a local chain mines only when
transactions arrive) and also steps every ``idle_s`` seconds without a new block, for work that
waits on something off chain (an IPFS block that was not available yet, a gateway's inbox).
A chain or store that goes away is logged and retried, never a crash of the daemon.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import requests

from chainml.errors import ChainError, ChainMLError, StorageError
from chainml.storage.store import StoreUnavailableError

log = logging.getLogger(__name__)

_RETRYABLE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    StoreUnavailableError,
    ChainError,
    StorageError,
)


class Stop:
    """Set by SIGTERM/SIGINT (or by a caller); the loop exits before its next step."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("received signal %d: stopping after this step", signum)
            self.event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def is_set(self) -> bool:
        return self.event.is_set()


def run_loop(
    name: str,
    step: Callable[[], Any],
    head: Callable[[], int],
    *,
    poll_s: float = 0.2,
    idle_s: float = 5.0,
    stop: Stop | None = None,
    once: bool = False,
) -> int:
    """Call ``step`` whenever ``head()`` moves (or every ``idle_s``); returns the step count."""
    stop = stop or Stop()
    steps = 0
    last_head: int | None = None
    last_step = 0.0
    log.info("%s: running", name)
    while not stop.is_set():
        try:
            current = head()
            if current != last_head or time.monotonic() - last_step >= idle_s:
                last_head = current
                last_step = time.monotonic()
                result = step()
                steps += 1
                if result:
                    log.debug("%s: %s", name, result)
                # A step that acted mined blocks of its own: look again at once.
                if once:
                    break
                continue
        except _RETRYABLE as exc:
            log.warning("%s: %s; retrying", name, _one_line(exc))
            if once:
                raise
            stop.event.wait(idle_s)
            continue
        except ChainMLError:
            raise
        stop.event.wait(poll_s)  # waiting for the next block: there is no push from the chain
    log.info("%s: stopped after %d steps", name, steps)
    return steps


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
