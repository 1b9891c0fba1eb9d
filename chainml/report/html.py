"""The report as ONE self-contained HTML file: inline CSS, plots as base64 data URIs.

No scripts, fonts, stylesheets or images are fetched from anywhere, so the file opens offline,
from an e-mail attachment or a CI artifact, exactly as it was written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from chainml.report.plots import Plot
from chainml.report.rundir import RunData

MAX_NODE_ROWS = 500
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem}
.sub{color:#666;margin-top:0} figure{margin:1rem 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:.75rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.3rem}
"""


def render_html(run: RunData, images: Sequence[tuple[Plot, bytes]]) -> str:
    name = run.path.resolve().name
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>chainml report: {escape(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>chainml run report: {escape(name)}</h1>",
        f'<p class="sub">{escape(_subtitle(run.config))}</p>',
        '<h2 id="summary">Summary</h2>',
        _cards(_summary(run)),
    ]
    for plot, png in images:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><h2>{escape(plot.title)}</h2><img id="plot-{plot.id}" '
            f'alt="{escape(plot.alt)}" src="data:image/png;base64,{data}"></figure>'
        )
    parts += [
        '<h2 id="rounds">Rounds</h2>',
        _table(ROUND_COLUMNS, (_round_row(r) for r in run.rounds)),
        '<h2 id="nodes">Nodes (last record of each)</h2>',
        _nodes_table(run),
        '<h2 id="config">Configuration</h2>',
        _table(("key", "value"), ((k, _json(v)) for k, v in sorted(run.config.items()))),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


ROUND_COLUMNS = (
    "round", "status", "version", "committed", "included", "excluded", "dropped",
    "loss before", "loss after", "gas", "wall time (s)",
)  # fmt: skip
NODE_COLUMNS = (
    "index", "node", "adversary", "attack", "status", "reputation", "bytes up", "bytes down",
    "energy (J)",
)  # fmt: skip


def _subtitle(config: dict[str, Any]) -> str:
    keys = ("task", "mode", "aggregation", "nodes", "rounds", "adversaries", "attack", "seed")
    shown = [f"{k} {config[k]}" for k in keys if config.get(k) is not None]
    return " · ".join(shown) or "no config.json"


def _summary(run: RunData) -> list[tuple[str, str]]:
    rounds = run.rounds
    finalized = sum(r.get("status") == "finalized" for r in rounds)
    last = next((r for r in reversed(rounds) if isinstance(r.get("heldout"), dict)), None)
    after = (last or {}).get("heldout", {}).get("loss_after", {}).get("mean")
    gas = sum(int((r.get("gas") or {}).get("total") or 0) for r in rounds)
    nodes = {n["node"] for n in run.nodes}
    adversaries = {n["node"] for n in run.nodes if n.get("adversary")}
    return [
        ("rounds", f"{len(rounds)}"),
        ("finalized", f"{finalized}"),
        ("held-out loss after (last)", _num(after)),
        ("total gas", f"{gas:,}"),
        ("nodes", f"{len(nodes) or run.config.get('nodes', '-')}"),
        ("adversarial nodes", f"{len(adversaries)}"),
    ]


def _round_row(r: dict[str, Any]) -> list[str]:
    held = r.get("heldout") or {}
    return [
        str(r["round"]), str(r.get("status", "-")), _num(r.get("version")),
        _num(r.get("committed")), _num(r.get("included")), _num(r.get("excluded")),
        _num(r.get("dropped")), _num((held.get("loss_before") or {}).get("mean")),
        _num((held.get("loss_after") or {}).get("mean")),
        _num((r.get("gas") or {}).get("total")), _num((r.get("wall_time_s") or {}).get("total")),
    ]  # fmt: skip


def _nodes_table(run: RunData) -> str:
    last: dict[str, dict[str, Any]] = {}
    totals: dict[str, list[float]] = {}
    for n in sorted(run.nodes, key=lambda n: n["round"]):
        last[n["node"]] = n
        t = totals.setdefault(n["node"], [0.0, 0.0, 0.0])
        for i, key in enumerate(("bytes_up", "bytes_down", "energy_j")):
            t[i] += float(n.get(key) or 0)
    rows = sorted(last.values(), key=lambda n: n.get("index", 0))
    body = [_node_row(n, totals[n["node"]]) for n in rows[:MAX_NODE_ROWS]]
    more = len(rows) - MAX_NODE_ROWS
    note = f"<p>… and {more} more nodes (see nodes.jsonl).</p>" if more > 0 else ""
    return _table(NODE_COLUMNS, body) + note if rows else "<p>No nodes.jsonl in this run.</p>"


def _node_row(n: dict[str, Any], totals: list[float]) -> list[str]:
    return [
        _num(n.get("index")), n["node"], "yes" if n.get("adversary") else "no",
        str(n.get("attack") or "-"), str(n.get("status", "-")), _num(n.get("reputation")),
        f"{totals[0]:,.0f}", f"{totals[1]:,.0f}", _num(totals[2]),
    ]  # fmt: skip


def _cards(items: list[tuple[str, str]]) -> str:
    cards = "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in items)
    return f'<div class="cards">{cards}</div>'


def _table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def cls(i: int) -> str:
        return ' class="l"' if i in (0, 1) and columns[1] in ("node", "value", "status") else ""

    head = "".join(f"<th{cls(i)}>{escape(c)}</th>" for i, c in enumerate(columns))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{escape(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
