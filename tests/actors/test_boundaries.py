"""The import direction: cli -> swarm (the harness) -> actors -> protocol -> {chain, storage,
device, aggregate} -> meta.

"protocol" (``chainml/protocol/``) is the pure functions of chain and IPFS data that the
aggregator, the validators and ``verify`` share (evidence, recompute, review, payloads,
settlement, verify, gas). ``chainml/swarm/`` is the harness. Every ``import`` statement counts,
lazy ones inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chainml.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "chainml"
RANK = {"cli": 5, "swarm": 4, "actors": 3, "protocol": 2, "base": 1, "meta": 0}
BASE = ("chainml.chain", "chainml.storage", "chainml.device", "chainml.aggregate")


def layer(module: str) -> str | None:
    """The layer of a chainml module, or None for parts outside the chain (mcu, report...)."""
    for prefix, name in (
        ("chainml.protocol", "protocol"),
        ("chainml.cli", "cli"),
        ("chainml.inspection", "cli"),
        ("chainml.swarm", "swarm"),
        ("chainml.actors", "actors"),
        ("chainml.meta", "meta"),
    ):
        if module == prefix or module.startswith(prefix + "."):
            return name
    if any(module == b or module.startswith(b + ".") for b in BASE):
        return "base"
    return None


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            package = PROJECT_ROOT.joinpath(*node.module.split("."))
            for a in node.names:
                sub = package / a.name
                if package.is_dir() and (sub.is_dir() or sub.with_suffix(".py").exists()):
                    # ``from chainml.protocol import settlement`` imports that module
                    found.append((node.lineno, f"{node.module}.{a.name}"))
                else:
                    found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("chainml")]


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        mine = layer(me)
        if mine is None:
            continue
        for line, target in imports_of(path):
            theirs = layer(target)
            if theirs is None or target == me:
                continue
            if RANK[theirs] > RANK[mine]:
                bad.append(
                    f"{path.relative_to(PROJECT_ROOT)}:{line} ({mine}) imports {target} ({theirs})"
                )
    return bad


def test_imports_point_down_the_layers() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("chainml.actors.validator", "chainml.protocol.review", True),  # protocol
        ("chainml.actors.gateway", "chainml.swarm.orchestrator", False),  # the harness
        ("chainml.protocol.recompute", "chainml.actors.node", False),
        ("chainml.chain.client", "chainml.protocol.payloads", False),
        ("chainml.meta.recipe", "chainml.storage.cid", False),
        ("chainml.swarm.orchestrator", "chainml.cli.context", False),
    ],
)
def test_the_rule_itself(source: str, target: str, allowed: bool) -> None:
    """The checker would catch an upward import (it must be able to fail)."""
    assert (RANK[layer(target)] <= RANK[layer(source)]) is allowed  # type: ignore[index]
