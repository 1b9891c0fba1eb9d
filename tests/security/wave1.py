"""The wave-1 code, run against today's chain: the "before the fix" half of the security tests.

Each security test shows its attack succeeding on the wave-1 code (commit 410302e, the last
before issue 12) and failing now. ``wave1_module(path, name)`` reads a module's source as it
was then (``git show``; no git state changes) and execs it under a private name. Since wave 1
the protocol modules moved (``chainml/swarm/`` to ``chainml/protocol/``) and the chain read
layer became typed records, so the old source cannot import or read what it used to. This
module bridges exactly that, and nothing else.

Wave-1 code, verbatim from 410302e:

- the modules under test: ``chainml/swarm/evidence.py`` (``gather_round``),
  ``chainml/swarm/validator.py`` (``review``, ``vote_salt``), ``chainml/swarm/verify.py``
  (``verify_history``);
- the helpers they import, loaded the same way because they still run against today's
  contracts: ``chainml/swarm/reads.py`` (``node_infos`` and ``reputations_before``: bulk
  ``nodeInfo`` calls and ``ReputationChanged`` logs, decoded through today's ABI) and
  ``chainml/chain/types.py`` (``cid_from_struct``, ``ProposalStatus``);
- the wave-1 ``Ledger``'s reads (``chainml/chain/client.py``): ``version``, ``round_info``,
  ``proposal``, ``logs``, ``commitments``, ``batches``, ``voided_leaves``, ``proposals`` and
  the ``_named`` helper, compiled from their own source (the whole wave-1 client cannot load:
  it compiled Solidity at run time with ``compile_contracts``, which is gone).

Today's code, which the wave-1 code runs on or calls:

- the contracts, deployed by today's fixtures, and their ABI;
- ``Wave1Ledger`` is today's ``Ledger``: its web3 contracts, ``_call`` (a view call with its
  revert decoded), ``current_version``, ``batch_tree`` and ``domain_separator`` (each the same
  logic as wave 1's);
- every import of a module that has not moved (``chainml.chain.eip712``, ``chainml.chain.merkle``,
  ``chainml.storage.cid``, ``chainml.storage.store``, ``chainml.aggregate.strategies``,
  ``chainml.errors``) is today's module;
- what the wave-1 modules import from ``chainml.swarm.{evidence,recompute,payloads}``
  resolves to today's ``chainml.protocol`` modules (``MOVED``). So the wave-1 ``review`` and
  ``verify_history`` apply their wave-1 checks to today's ``gather_round`` and
  ``compute_aggregate``: the wave-1 recompute cannot run on today's history (it imports
  ``chainml.meta.federated.apply_update``, which is gone, and applies a fixed server step where
  today's version files carry the recipe and optimizer state). These tests therefore show what
  the wave-1 review and verify compared and what they did not, not the wave-1 aggregation.
  The wave-1 ``gather_round`` decodes its leaves files with today's ``decode_leaves``.

Adapted (the only new logic): each read that both Ledgers have (``WAVE1_READS``) returns both
answers, because the wave-1 review and verify hand the same ledger to today's protocol
functions: today's typed record (an instance of a subclass of it, so attribute access,
``isinstance`` and ``dataclasses.replace`` work) that answers wave 1's ``["camelCase"]``
subscripts with the dict the wave-1 read method made from the same contract. Event lists are
paired by chain position, which must agree. ``logs``, which today's ``Ledger`` lacks, is the
wave-1 method alone. The wave-1 modules' ``from chainml.chain.client import Ledger`` resolves
to this module's ``Ledger`` (``Wave1Ledger``), so the wave-1 ``review`` builds one from its
job; a test hands one to the other wave-1 functions with ``Wave1Ledger.of(ledger)``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from chainml.chain.client import Ledger as TodaysLedger
from chainml.paths import PROJECT_ROOT

WAVE1_COMMIT = "410302e"
"""The last commit before issue 12's changes (the wave-1 code)."""

WAVE1_HELPERS = {
    r"chainml\.swarm\.reads\b": "chainml/swarm/reads.py",
    r"chainml\.chain\.types\b": "chainml/chain/types.py",
}
"""Modules the wave-1 code imports that are loaded from the wave-1 commit too."""

MOVED = {
    r"chainml\.chain\.client\b": __name__,
    r"chainml\.swarm\.validator\b": "chainml.protocol.review",
    r"chainml\.swarm\.(evidence|recompute|payloads|verify|settlement|gas)\b": (
        r"chainml.protocol.\1"
    ),
}
"""Modules the wave-1 code imports from today's tree: where each now lives (the chain client
is this module, whose ``Ledger`` has the wave-1 reads)."""

WAVE1_READS = (
    "version",
    "round_info",
    "proposal",
    "commitments",
    "batches",
    "voided_leaves",
    "proposals",
)
"""The wave-1 ``Ledger`` reads that today's ``Ledger`` also has, with typed results."""


def wave1_source(path: str) -> str:
    """``path`` as it was at the wave-1 commit."""
    return subprocess.run(
        ["git", "show", f"{WAVE1_COMMIT}:{path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def wave1_module(path: str, name: str) -> ModuleType:
    """Load ``path`` as it was at the wave-1 commit under the private module name ``name``:
    its wave-1 helpers loaded from that commit too, its moved imports redirected."""
    source = wave1_source(path)
    for pattern, helper in WAVE1_HELPERS.items():
        if re.search(pattern, source):
            source = re.sub(pattern, _helper(helper).__name__, source)
    for old, new in MOVED.items():
        source = re.sub(old, new, source)
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(Path(PROJECT_ROOT) / path)
    sys.modules[name] = module
    exec(compile(source, f"{WAVE1_COMMIT}:{path}", "exec", dont_inherit=True), module.__dict__)
    return module


def _helper(path: str) -> ModuleType:
    """A wave-1 helper module, loaded once per process."""
    name = "wave1_" + path.removesuffix(".py").replace("/", "_")
    return sys.modules.get(name) or wave1_module(path, name)


@cache
def _wave1_reads() -> dict[str, Callable[..., Any]]:
    """The wave-1 ``Ledger``'s read methods and ``logs``, with ``_named`` which they call,
    compiled from their 410302e source (methods as plain functions of ``self``)."""
    path = "chainml/chain/client.py"
    tree = ast.parse(wave1_source(path))
    (ledger,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Ledger"]
    wanted = {*WAVE1_READS, "logs"}
    functions = [n for n in ledger.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    functions += [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_named"]
    assert {n.name for n in functions} == {*wanted, "_named"}, "the wave-1 client changed shape"
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    module = ast.Module(body=[*future, *functions], type_ignores=[])  # annotations stay text
    namespace: dict[str, Any] = {}
    exec(compile(module, f"{WAVE1_COMMIT}:{path}", "exec", dont_inherit=True), namespace)
    return namespace


class Wave1Answer:
    """Mixed into a copy of today's record: wave 1's subscripts, answered from the dict the
    wave-1 read made."""

    def __getitem__(self, key: str) -> Any:
        return self.__dict__["_wave1"][key]


@cache
def _answer_type(record: type) -> type:
    return type(record.__name__, (record, Wave1Answer), {"__module__": __name__})


def _answer(today: Any, wave1: Any) -> Any:
    """Today's record (or list of event records) that also answers wave 1's subscripts."""
    if isinstance(today, list):
        ours = [e.position for e in today]
        theirs = [(int(e["blockNumber"]), int(e["logIndex"])) for e in wave1]
        assert ours == theirs, f"the two reads disagree: events at {ours} and {theirs}"
        return [_answer(t, w) for t, w in zip(today, wave1, strict=True)]
    fields = {f.name: getattr(today, f.name) for f in dataclasses.fields(today)}
    both = _answer_type(type(today))(**fields)
    object.__setattr__(both, "_wave1", wave1)  # records are frozen
    return both


def _read(name: str) -> Callable[..., Any]:
    """Ledger method ``name``: today's read and the wave-1 read, as one answer."""

    def read(self: Wave1Ledger, *args: Any, **kwargs: Any) -> Any:
        today = getattr(TodaysLedger, name)(self, *args, **kwargs)
        return _answer(today, _wave1_reads()[name](self, *args, **kwargs))

    read.__name__ = name
    return read


class Wave1Ledger(TodaysLedger):
    """Today's ``Ledger`` with the wave-1 ``Ledger``'s read API (see the module docstring)."""

    version = _read("version")
    round_info = _read("round_info")
    proposal = _read("proposal")
    commitments = _read("commitments")
    batches = _read("batches")
    voided_leaves = _read("voided_leaves")
    proposals = _read("proposals")

    def logs(self, contract: Any, name: str, from_block: int = 0, **filters: Any) -> Any:
        """The wave-1 ``logs``: event args as dicts, with ``blockNumber`` and ``logIndex``."""
        return _wave1_reads()["logs"](self, contract, name, from_block, **filters)

    @classmethod
    def of(cls, ledger: TodaysLedger) -> Wave1Ledger:
        """A wave-1-speaking ledger on ``ledger``'s chain and contracts (it only reads)."""
        return cls(ledger.w3, ledger.ledger.address, ledger.voting.address)


Ledger = Wave1Ledger
"""What ``chainml.chain.client.Ledger`` means to the wave-1 modules."""
