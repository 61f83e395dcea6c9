"""The figure of one solver's hyperparameter sweep (``raybench sweep``): every trial's
validation accuracy over meta-steps, and its score against each sampled parameter."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from raybench.report.plots.groups import file_stem, fmt, num, rows_of, run_groups
from raybench.report.plots.registry import Planned, PlotContext, figure_kind
from raybench.report.plots.style import (
    STATUS_COLORS,
    NothingToPlot,
    blank_figure,
    empty,
    fit_percent_axis,
    integer_ticks,
    legend,
    param_axis,
)

OTHER_STATUS = "#9467bd"
MAX_PANELS = 8
# The marker at the end of each trial's curve: where (and how) it ended.
END_MARKERS = {"completed": "o", "stopped": "s", "diverged": "X", "errored": "X"}


def trial_params(row: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled parameters: the JSON (original keys), else the ``param_`` columns."""
    try:
        params = json.loads(row.get("params_json") or "{}")
    except ValueError:
        params = {}
    if isinstance(params, dict) and params:
        return params
    return {
        k[len("param_") :]: v for k, v in row.items() if k.startswith("param_") and v is not None
    }


def _history(row: dict[str, Any]) -> list[tuple[float, float]]:
    try:
        history = json.loads(row.get("history_json") or "[]")
    except ValueError:
        history = []
    pts = [(num(h.get("step")), num(h.get("val_acc"))) for h in history if isinstance(h, dict)]
    return [(s, a) for s, a in pts if math.isfinite(s) and math.isfinite(a)]


def panel_grid(fig: Figure, n: int, *, max_cols: int = 4) -> list[Axes]:
    """``n`` panels on a grid with no empty cell: as many columns as fit (at most
    ``max_cols``), and the first panel widened over the cells that would stay empty. All
    panels share their y axis."""
    nrows = math.ceil(n / max_cols)
    ncols = math.ceil(n / nrows)
    extra = nrows * ncols - n
    grid = fig.add_gridspec(nrows, ncols)
    first = fig.add_subplot(grid[0, : 1 + extra])
    axes = [first]
    cells = [(r, c) for r in range(nrows) for c in range(ncols)][1 + extra :]
    for r, c in cells:
        axes.append(fig.add_subplot(grid[r, c], sharey=first))
    return axes


def sweep_figure(
    table: pa.Table, solver: str, *, experiment: str = "", runs: pa.Table | None = None
) -> Figure:
    """One solver's sweep: each trial's validation accuracy over meta-steps (what ASHA saw,
    a marker at every evaluation so a trial stopped after one is visible, and its end
    marked by status), then its last validation accuracy against each sampled parameter,
    coloured by status, the best completed trial starred. Every panel shares one y axis."""
    trials = [r for r in rows_of(table) if r.get("solver") == solver]
    if not trials:
        raise NothingToPlot(f"no trials of {solver}")
    params = [trial_params(t) for t in trials]
    keys = sorted({k for p in params for k in p})
    histories = [_history(t) for t in trials]
    has_history = any(histories)
    room = MAX_PANELS - (1 if has_history else 0)
    panels = (["history"] if has_history else []) + keys[:room]
    left_out = keys[room:]
    if not panels:
        raise NothingToPlot(f"the trials of {solver} have neither parameters nor histories")
    fig = blank_figure()
    axes = panel_grid(fig, len(panels))
    scores = [num(t.get("val_acc")) for t in trials]
    statuses = [str(t.get("status") or "?") for t in trials]
    done = [
        i for i, t in enumerate(trials) if statuses[i] == "completed" and math.isfinite(scores[i])
    ]
    best = max(done, key=lambda i: scores[i]) if done else None
    for ax, panel in zip(axes, panels):
        if panel == "history":
            _draw_histories(ax, histories, statuses, best)
        else:
            _draw_scores(ax, panel, [p.get(panel) for p in params], scores, statuses, best, solver)
        ax.grid(alpha=0.3, which="both")
        if not ax.has_data():
            empty(ax, "no finite scores")
    fit_percent_axis(axes, "validation accuracy (%)")
    for ax in axes[1:]:
        if ax.get_subplotspec().is_first_col():
            continue
        ax.tick_params(labelleft=False)
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(sorted(statuses)))
    unscored = sum(not math.isfinite(s) for s in scores)
    setting = ""
    mine = [g for g in run_groups(runs) if g.solver == solver] if runs is not None else []
    if mine:
        setting = f"; final runs: {mine[0].setting()}, {mine[0].seed_text()}"
    best_text = ""
    if best is not None:
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(params[best].items()))
        best_text = f"\nbest: {scores[best]:.1f}% with {shown}"
    fig.suptitle(
        f"Sweep of {solver}: {len(trials)} trials ({counts})"
        + (f", {unscored} without a score" if unscored else "")
        + setting
        + (f"; experiment {experiment}" if experiment else "")
        + (f"; parameters not shown: {', '.join(left_out)}" if left_out else "")
        + best_text,
        fontsize="medium",
    )
    handles: list = [
        Line2D([], [], color=STATUS_COLORS.get(s, OTHER_STATUS), marker=END_MARKERS.get(s, "o"),
               linestyle="", label=s + (" (score: last evaluation before the stop)"
                                        if s == "stopped" else ""))
        for s in dict.fromkeys(sorted(statuses))
    ]  # fmt: skip
    if best is not None:
        handles.append(
            Line2D([], [], color=STATUS_COLORS["completed"], marker="*", markersize=14,
                   markeredgecolor="black", linestyle="", label="best completed trial")
        )  # fmt: skip
    legend(fig, handles, loc="outside lower center", ncol=len(handles))
    return fig


def _draw_histories(
    ax: Axes, histories: list[list[tuple[float, float]]], statuses: list[str], best: int | None
) -> None:
    for i, pts in enumerate(histories):
        if not pts:
            continue
        color = STATUS_COLORS.get(statuses[i], OTHER_STATUS)
        top = i == best
        ax.plot(
            [s for s, _ in pts], [a for _, a in pts], color=color, marker="o", markersize=3,
            alpha=1.0 if top else 0.6, linewidth=2.5 if top else 1, zorder=3 if top else 2,
        )  # fmt: skip
        ax.plot(
            [pts[-1][0]], [pts[-1][1]], linestyle="", marker=END_MARKERS.get(statuses[i], "o"),
            markersize=7, color=color, markeredgecolor="black", markeredgewidth=0.5, zorder=4,
        )  # fmt: skip
    ax.set_xlabel("meta-step")
    integer_ticks(ax.xaxis)
    ax.set_title("each trial over meta-steps (end marked by status)", fontsize="medium")


def _draw_scores(
    ax: Axes,
    key: str,
    values: list[Any],
    scores: list[float],
    statuses: list[str],
    best: int | None,
    solver: str,
) -> None:
    categorical = any(isinstance(v, str) for v in values)
    if categorical:
        cats = sorted({str(v) for v in values if v is not None})
        xs = [cats.index(str(v)) if v is not None else math.nan for v in values]
        ax.set_xticks(range(len(cats)), cats)
        ax.set_xlabel(key)
    else:
        xs = [num(v) for v in values]
    for i, (x, y) in enumerate(zip(xs, scores)):
        if math.isfinite(x) and math.isfinite(y):
            top = i == best
            ax.scatter(
                [x], [y], color=STATUS_COLORS.get(statuses[i], OTHER_STATUS),
                marker="*" if top else END_MARKERS.get(statuses[i], "o"), s=220 if top else 30,
                edgecolors="black" if top else "none", zorder=3 if top else 2,
            )  # fmt: skip
    if not categorical:  # after drawing: the scale rule may set limits from the data
        param_axis(ax, key, xs, solver=solver)
    ax.set_title(f"score against {key}", fontsize="medium")


@figure_kind("sweeps", order=60)
def sweep_figures(ctx: PlotContext) -> Iterator[Planned]:
    trials = ctx.table("trials")
    solvers = (
        sorted({str(s) for s in trials.column("solver").to_pylist() if s})
        if (trials.num_rows and "solver" in trials.column_names)
        else []
    )
    if not solvers:
        raise NothingToPlot("no trials table (raybench sweep)")
    runs = ctx.table("runs")
    for solver in solvers:
        yield Planned(
            f"sweep of {solver}",
            f"sweep-{file_stem(solver)}",
            lambda s=solver: sweep_figure(trials, s, experiment=ctx.name, runs=runs),
        )
