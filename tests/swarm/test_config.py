"""A swarm's settings are checked when they are made, not rounds later in a traceback."""

from __future__ import annotations

import pytest

from chainml.errors import ConfigError
from chainml.swarm.config import SwarmConfig


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"eval_tasks": 20}, "eval tasks must be at least 100"),
        ({"nodes": 0}, "--nodes must be at least 1"),
        ({"adversaries": 0.2}, "--adversaries needs an --attack"),
        ({"dropout": 1.0}, r"--dropout must be in \[0, 1\)"),
    ],
)
def test_bad_settings_are_one_clear_error(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SwarmConfig(**settings)


def test_the_defaults_are_valid() -> None:
    assert SwarmConfig().eval_tasks >= 100
