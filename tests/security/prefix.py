"""The code just before a later fix, run on today's chain: the "before" half of a security test
for a fix made after wave 1 (``tests/security/wave1.py`` loads the wave-1 code).

``functions_at(commit, module)`` compiles the top-level functions of ``module``'s source as it
was at ``commit`` (``git show``; no git state changes) into a copy of today's module namespace.
Only the function bodies are old: every name they use (imports, types, helpers the old source
did not define) is today's, so an old check runs against today's records and protocol
functions exactly as it ran before the fix. The functions it defines replace today's of the
same name, so old callers call old callees.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from chainml.paths import PROJECT_ROOT

METRICS_FIX_PARENT = "181bb31a"
"""The last commit before validators and ``verify`` recomputed the metrics file (issue 13)."""


def functions_at(
    commit: str, module: ModuleType, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """``module``'s top-level functions (or only ``names``) as they were at ``commit``, in a
    namespace of today's module's globals."""
    path = module.__name__.replace(".", "/") + ".py"
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tree = ast.parse(source)
    wanted = set(names) if names is not None else None
    body: list[ast.stmt] = [
        n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"
    ]
    found = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and (wanted is None or n.name in wanted)
    ]
    assert wanted is None or {n.name for n in found} == wanted, f"{path} changed shape"
    namespace = dict(vars(module))
    code = ast.Module(body=[*body, *found], type_ignores=[])
    exec(compile(code, f"{commit}:{path}", "exec", dont_inherit=True), namespace)
    return namespace
