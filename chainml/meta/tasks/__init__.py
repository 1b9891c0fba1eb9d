"""Registry of task families: ``sine``, ``meter``, ``vibration``, ``coldchain``, ``digits``,
``gasdrift`` (event-based gas sensors with drift, for spiking models)."""

from __future__ import annotations

from collections.abc import Callable

from chainml.errors import MetaLearningError
from chainml.meta.tasks.base import Episode, Split, Task, TaskFamily, stack_episodes
from chainml.meta.tasks.coldchain import ColdChainFamily
from chainml.meta.tasks.digits import DigitsFamily
from chainml.meta.tasks.gasdrift import GasDriftFamily
from chainml.meta.tasks.meter import MeterFamily
from chainml.meta.tasks.sine import SineFamily
from chainml.meta.tasks.vibration import VibrationFamily

FAMILIES: dict[str, Callable[[], TaskFamily]] = {
    "sine": SineFamily,
    "meter": MeterFamily,
    "vibration": VibrationFamily,
    "coldchain": ColdChainFamily,
    "digits": DigitsFamily,
    "gasdrift": GasDriftFamily,
}


def get_family(name: str) -> TaskFamily:
    """A fresh family object by registry name."""
    try:
        return FAMILIES[name]()
    except KeyError:
        raise MetaLearningError(
            f"unknown task family {name!r}; choose one of {sorted(FAMILIES)}"
        ) from None


__all__ = ["FAMILIES", "Episode", "Split", "Task", "TaskFamily", "get_family", "stack_episodes"]
