"""The report's five plots, drawn with matplotlib's object API on the Agg canvas.

No pyplot (no global figure state, no GUI backend), a fixed style and size, and PNGs saved
without the "Software" metadata, so the same run directory gives byte-identical images.
A plot whose data is missing (a run cut short, no adversaries, no curves yet) still renders,
with a "no data" note, so the report always has the same sections.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chainml.report.rundir import RunData

DPI = 100
SIZE = (7.0, 4.0)
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "path.simplify": False,
}
METHODS = {"meta": "meta-init", "scratch": "from scratch", "fedavg": "FedAvg init"}
GAS_KINDS = ("commit", "propose", "vote", "finalize", "settle")
GROUPS = ((False, "honest", "tab:green"), (True, "adversarial", "tab:red"))


@dataclass(frozen=True)
class Plot:
    """One plot of the report: its element id, heading, alt text and how to draw it."""

    id: str
    title: str
    alt: str
    draw: Callable[[Figure, RunData], None]


def render_png(plot: Plot, run: RunData) -> bytes:
    """The plot as PNG bytes (deterministic for a given run and matplotlib version)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        plot.draw(fig, run)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _stat(record: dict[str, Any] | None, *path: str) -> float | None:
    """A number at ``path`` in nested dicts, or None if any step is missing or null."""
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _no_data(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _band(ax: Axes, run: RunData, key: str, label: str, color: str) -> bool:
    points = [
        (r["round"], _stat(r, "heldout", key, "mean"), _stat(r, "heldout", key, "ci95") or 0.0)
        for r in run.rounds
    ]
    points = [(x, m, c) for x, m, c in points if m is not None]
    if not points:
        return False
    xs, means, cis = zip(*points, strict=True)
    ax.plot(xs, means, marker="o", color=color, label=label)
    lo = [m - c for m, c in zip(means, cis, strict=True)]
    hi = [m + c for m, c in zip(means, cis, strict=True)]
    ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
    return True


def draw_heldout(fig: Figure, run: RunData) -> None:
    ax = fig.add_subplot()
    drawn = [
        _band(ax, run, "loss_before", "MAML protocol, before adaptation", "tab:gray"),
        _band(ax, run, "loss_after", "MAML protocol, after 10 steps", "tab:blue"),
        _band(ax, run, "device", "device protocol (head re-fit)", "tab:green"),
    ]
    if not any(drawn):
        return _no_data(ax, "no round has held-out metrics yet")
    ax.set_xlabel("round")
    ax.set_ylabel("held-out loss (mean, 95% CI)")
    ax.legend()


def draw_adaptation(fig: Figure, run: RunData) -> None:
    ax = fig.add_subplot()
    last = next((r for r in reversed(run.rounds) if isinstance(r.get("curve"), dict)), None)
    if last is None:
        return _no_data(ax, "no round has adaptation curves yet")
    for method, label in METHODS.items():
        curve = last["curve"].get(method)
        if not isinstance(curve, dict):
            continue
        points = sorted(
            (int(k), _stat(v, "mean"), _stat(v, "ci95") or 0.0)
            for k, v in curve.items()
            if _stat(v, "mean") is not None
        )
        if points:
            ks, means, cis = zip(*points, strict=True)
            ax.errorbar(ks, means, yerr=cis, marker="o", capsize=3, label=label)
    ax.set_xlabel("adaptation steps")
    ax.set_ylabel("loss on query set")
    ax.set_title(f"round {last['round']}", fontsize=10)
    ax.legend()


def draw_cost(fig: Figure, run: RunData) -> None:
    axes = fig.subplots(1, 2)
    for ax, key, unit, scale in (
        (axes[0], "bytes_per_node", "kB per node", 1e-3),
        (axes[1], "energy_per_node_j", "J per node", 1.0),
    ):
        drawn = False
        for stat, style in (("mean", "-o"), ("max", "--^")):
            pts = [(r["round"], _stat(r, key, stat)) for r in run.rounds]
            pts = [(x, v * scale) for x, v in pts if v is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, label=stat)
                drawn = True
        if not drawn:
            _no_data(ax, "no data")
            continue
        ax.set_xlabel("round")
        ax.set_ylabel(unit)
        ax.legend()


def draw_gas(fig: Figure, run: RunData) -> None:
    ax = fig.add_subplot()
    rows = [r for r in run.rounds if isinstance(r.get("gas"), dict)]
    if not rows:
        return _no_data(ax, "no gas recorded yet")
    xs = [r["round"] for r in rows]
    bottom = [0.0] * len(rows)
    for kind in GAS_KINDS:
        values = [(_stat(r, "gas", kind) or 0.0) / 1e3 for r in rows]
        ax.bar(xs, values, bottom=bottom, label=kind)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel("gas (thousands)")
    ax.legend(ncols=len(GAS_KINDS), fontsize=8)


def draw_reputation(fig: Figure, run: RunData) -> None:
    ax = fig.add_subplot()
    groups: dict[bool, dict[int, list[float]]] = {False: defaultdict(list), True: defaultdict(list)}
    for n in run.nodes:
        rep = _stat(n, "reputation")
        if rep is not None:
            groups[bool(n.get("adversary"))][n["round"]].append(rep)
    if not any(groups.values()):
        return _no_data(ax, "no per-node records (nodes.jsonl)")
    for adversarial, label, color in GROUPS:
        by_round = groups[adversarial]
        if by_round:
            xs = sorted(by_round)
            ax.plot(xs, [fmean(by_round[x]) for x in xs], "-o", color=color, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("mean reputation")
    ax.legend()


PLOTS: tuple[Plot, ...] = (
    Plot("heldout-loss", "Held-out loss by round",
         "Held-out loss before and after adaptation against round, with 95% CI bands",
         draw_heldout),
    Plot("adaptation", "Adaptation curves",
         "Query loss against adaptation steps for the meta-init and the baselines",
         draw_adaptation),
    Plot("cost-per-node", "Bytes and energy per node",
         "Bytes and energy per node per round, mean and max", draw_cost),
    Plot("gas", "Gas per round", "Gas per round stacked by transaction kind", draw_gas),
    Plot("reputation", "Reputation over time",
         "Mean reputation by round, honest against adversarial nodes", draw_reputation),
)  # fmt: skip
