"""Figures of the solver studies: memory and time against inner steps (``raybench scaling``)
and meta-gradient fidelity against exact MAML (``raybench fidelity``)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from raybench.report.plots.groups import fmt, num, rows_of
from raybench.report.plots.registry import Planned, PlotContext, figure_kind
from raybench.report.plots.style import (
    NothingToPlot,
    empty,
    integer_ticks,
    legend,
    log_y_with_zeros,
    new_figure,
    param_axis,
    plain_log_ticks,
    same_series,
    solver_color,
    solver_marker,
    zero_handle,
)
from raybench.solver_catalog import family_rank

_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def _rank(rows: Sequence[dict[str, Any]]) -> Any:
    def key(solver: str) -> tuple:
        family = next((r.get("family") for r in rows if r.get("solver") == solver), None)
        return (family_rank(family), solver)

    return key


# -- scaling -------------------------------------------------------------------------------


# Line styles of a line drawn over others it coincides with: the first over one line is
# dashed, one over two is dotted, and so on, so that each stays visible between the gaps.
OVER_DASHES = ((0, (4, 4)), (0, (1, 3)), (0, (6, 2, 1, 2)))


def _short_verdict(v: Any) -> str:
    """The legend's version of a scaling verdict (the report prints the full one)."""
    if v is None:
        return ""
    if v.text.startswith("pre-training step"):
        return "no inner loop in its step (measured once)"
    if v.observed is None:
        return f"too few points for a trend ({v.points})"
    slope = f"{v.mb_per_inner_step:+.3g} MiB/inner step" if v.mb_per_inner_step is not None else ""
    mark = ""
    if v.expected is not None:
        mark = ", as expected" if v.as_expected else f", NOT as expected ({v.expected})"
    return f"memory {v.observed} ({slope}){mark}"


def scaling_figure(table: pa.Table, *, experiment: str = "") -> Figure:
    """Peak memory and time of one meta-step against the inner steps, per solver (the
    scaling study): MAML and the penalty method should grow, the others stay flat. Baselines,
    whose step has no inner loop, are horizontal lines. One row of panels per setting (the
    newest three). A line that would hide another is drawn dashed on top of it, and the
    legend says which overlap."""
    from raybench.measurements.scaling import memory_kind_name, setting_groups, verdicts

    def usable(r: dict[str, Any]) -> bool:
        measured = math.isfinite(num(r.get("peak_memory_mb"))) or math.isfinite(
            num(r.get("ms_per_step"))
        )
        return measured and bool(r.get("solver")) and math.isfinite(num(r.get("inner_steps")))

    groups = [(setting, [r for r in rows if usable(r)]) for setting, rows in setting_groups(table)]
    groups = [g for g in groups if g[1]]
    if not groups:
        raise NothingToPlot("no scaling measurement with a memory or time value")
    groups.sort(key=lambda g: max((r.get("created_at") or _NEVER) for r in g[1]), reverse=True)
    shown, hidden = groups[:3], len(groups) - 3
    fig, axes = new_figure(len(shown), 2, sharex=True)
    all_rows = [r for _, rows in shown for r in rows]
    solvers = sorted({r["solver"] for r in all_rows}, key=_rank(all_rows))
    handles: dict[str, Line2D] = {}
    overlaps: dict[str, dict[str, set[str]]] = {}  # solver -> panel -> solvers it covers
    for (setting, rows), (mem_ax, time_ax) in zip(shown, axes):
        verdict = {v.solver: v for v in verdicts(rows)}
        counts = sorted({int(r["inner_steps"]) for r in rows})
        span = (
            (counts[0], counts[-1]) if counts[0] != counts[-1] else (counts[0] - 1, counts[0] + 1)
        )
        for ax, column, panel in (
            (mem_ax, "peak_memory_mb", "memory"),
            (time_ax, "ms_per_step", "time"),
        ):
            _scaling_panel(ax, rows, column, panel, solvers, span, verdict, handles, overlaps)
        kinds = sorted({memory_kind_name(r.get("memory_kind")) for r in rows})
        where = _scaling_setting(setting)
        mem_ax.set_title(
            textwrap.fill("memory of a meta-step: " + "; ".join(kinds), 55)
            + (f"\n{where}" if len(shown) > 1 else ""),
            fontsize="medium",
        )
        time_ax.set_title("time of a meta-step\n(median of the timed steps)", fontsize="medium")
        mem_ax.set_ylabel("memory (MiB)")
        time_ax.set_ylabel("time per meta-step (ms)")
    for ax in axes[-1]:
        ax.set_xlabel("inner steps")
    _scaling_legend(fig, shown, hidden, handles, overlaps, experiment)
    return fig


def _scaling_panel(
    ax: Any,
    rows: list[dict[str, Any]],
    column: str,
    panel: str,
    solvers: list[str],
    span: tuple[int, int],
    verdict: dict[str, Any],
    handles: dict[str, Line2D],
    overlaps: dict[str, dict[str, set[str]]],
) -> None:
    """One panel (memory or time) of one setting: a line per solver, one that would hide
    another drawn thin and dashed over it (``overlaps`` records which)."""
    counts = sorted({int(r["inner_steps"]) for r in rows})
    finite = [v for v in (num(r.get(column)) for r in rows) if math.isfinite(v)]
    if not finite:
        empty(ax, "nothing measured")
        return
    tol = 0.01 * ((max(finite) - min(finite)) or abs(max(finite)) or 1.0)
    drawn: list[tuple[str, list[tuple[float, float]]]] = []
    for solver in solvers:
        mine = sorted((r for r in rows if r["solver"] == solver), key=lambda r: r["inner_steps"])
        pts = [
            (float(r["inner_steps"]), num(r.get(column)))
            for r in mine
            if math.isfinite(num(r.get(column)))
        ]
        if not pts:
            continue
        once = not any(r.get("inner_steps_matter", True) for r in mine)
        if once:  # measured once, the same at every count: a horizontal line
            pts = [(float(k), pts[0][1]) for k in span]
        under = [other for other, theirs in drawn if same_series(theirs, pts, tol)]
        style: dict[str, Any] = {
            "color": solver_color(solver),
            "marker": None if once else solver_marker(solver),
            "linestyle": (0, (6, 2)) if once else "-",
            "linewidth": 3.5,
            "zorder": 2,
        }
        if under:  # drawn thin and dashed over the wider line(s) it would hide
            dashes = OVER_DASHES[(len(under) - 1) % len(OVER_DASHES)]
            style.update(linestyle=dashes, linewidth=1.6, zorder=2 + len(under), markersize=4)
            overlaps.setdefault(solver, {}).setdefault(panel, set()).update(under)
        ax.plot([x for x, _ in pts], [y for _, y in pts], **style)
        drawn.append((solver, pts))
        if solver not in handles:
            v = verdict.get(solver)
            handles[solver] = Line2D(
                [], [], color=solver_color(solver), marker=style["marker"],
                linestyle="-" if not once else (0, (6, 2)), linewidth=2,
                label=f"{solver}: {_short_verdict(v)}",
            )  # fmt: skip
    if finite and min(finite) >= 0:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if 0 < len(counts) <= 10:
        ax.set_xticks(counts)
    else:
        integer_ticks(ax.xaxis)


def _scaling_legend(
    fig: Figure,
    shown: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    hidden: int,
    handles: dict[str, Line2D],
    overlaps: dict[str, dict[str, set[str]]],
    experiment: str,
) -> None:
    """The figure's title and the legend beside its panels (with the overlaps said)."""
    from raybench.measurements.scaling import TREND_RULE

    for solver, panels in overlaps.items():
        handle = handles[solver]
        covered = "; ".join(f"{p}: {', '.join(sorted(u))}" for p, u in sorted(panels.items()))
        handle.set_label(f"{handle.get_label()} [dashed over {covered}]")
    fig.suptitle(
        "Memory and time of one meta-step against inner steps (scaling study)"
        + (f"; experiment {experiment}" if experiment else "")
        + (f"\n{_scaling_setting(shown[0][0])}" if len(shown) == 1 else "")
        + ("\none row per setting, each on its own y scale" if len(shown) > 1 else "")
        + (f"; {hidden} older setting(s) not shown" if hidden > 0 else ""),
        fontsize="medium",
    )
    for handle in handles.values():  # a column beside the panels: wrapped to fit it
        handle.set_label(textwrap.fill(handle.get_label(), 44, subsequent_indent="  "))
    notes = [Line2D([], [], linestyle="", label=textwrap.fill(TREND_RULE, 44))]
    legend(fig, [*handles.values(), *notes], loc="outside right center")


def _scaling_setting(setting: dict[str, Any]) -> str:
    """``cpu: ..., preset paper, 5-way 1-shot, meta-batch 16, float32`` (what is known)."""
    parts = [str(setting[k]) for k in ("device",) if setting.get(k)]
    if setting.get("preset"):
        parts.append(f"preset {setting['preset']}")
    if setting.get("ways") is not None and setting.get("shots") is not None:
        parts.append(f"{setting['ways']}-way {setting['shots']}-shot")
    if setting.get("meta_batch") is not None:
        parts.append(f"meta-batch {setting['meta_batch']}")
    parts += [str(setting[k]) for k in ("dtype",) if setting.get(k)]
    if setting.get("threads"):
        parts.append(f"{setting['threads']} thread(s)")
    return ", ".join(parts)


@figure_kind("scaling", order=40)
def scaling_figures(ctx: PlotContext) -> Iterator[Planned]:
    table = ctx.table("scaling")
    if not table.num_rows:
        raise NothingToPlot("no scaling table (raybench scaling)")
    yield Planned("scaling", "scaling-memory", lambda: scaling_figure(table, experiment=ctx.name))


# -- fidelity ------------------------------------------------------------------------------

_FIDELITY_TITLE = (
    ("preset", "preset {}"),
    ("ways", "{}-way"),
    ("shots", "{}-shot"),
    ("tasks", "{} validation tasks"),
    ("inner_steps", "{} inner steps"),
    ("inner_lr", "inner lr {}"),
)
_FIDELITY_SETTING = ("tasks", "inner_steps", "inner_lr", "ways", "shots", "preset", "dtype")
# Where the comparison was made: the solver's colour, told apart by line and marker fill.
POINT_KINDS = (
    ("init", "-", "full", "at the initialisation"),
    ("trained", "--", "none", "at trained checkpoints (mean, range as a band)"),
)
MAX_COLUMNS = 5


def _kind_of(r: dict[str, Any]) -> str:
    return "init" if r.get("point_kind") == "init" else "trained"


def fidelity_figure(table: pa.Table, *, experiment: str = "") -> Figure:
    """Cosine similarity (top) and relative error (bottom) of each solver's meta-gradient
    against exact MAML's, against the solver's knob (CG steps, Neumann terms, penalty
    weight), each row on one shared y axis; solvers without a knob as points in the last
    column. At the initialisation, and averaged over trained checkpoints."""
    rows = [r for r in rows_of(table) if math.isfinite(num(r.get("cosine"))) and r.get("solver")]
    if not rows:
        raise NothingToPlot("no fidelity row with a cosine")
    settings: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        settings.setdefault(tuple(r.get(k) for k in _FIDELITY_SETTING), []).append(r)
    rows = max(settings.values(), key=lambda rs: max((r.get("created_at") or _NEVER) for r in rs))
    hidden = len(settings) - 1
    points = {(r.get("point_kind") == "init", r.get("point")) for r in rows}
    point_counts = {
        "initialisation point(s)": sum(init for init, _ in points),
        "trained checkpoint(s)": sum(not init for init, _ in points),
    }
    knobbed = sorted({r["solver"] for r in rows if r.get("knob")}, key=_rank(rows))
    plain = sorted({r["solver"] for r in rows if not r.get("knob")}, key=_rank(rows))
    room = MAX_COLUMNS - (1 if plain else 0)
    left_out = knobbed[room:]
    knobbed = knobbed[:room]
    ncols = len(knobbed) + (1 if plain else 0)
    fig, axes = new_figure(2, ncols, sharey="row", sharex="col")
    rel = [num(r.get("rel_error")) for r in rows if not r.get("pseudo_gradient")]
    positive = [v for v in rel if math.isfinite(v) and v > 0]
    log = bool(positive)
    if log:
        axes[1, 0].set_yscale("log")  # shared along the row
        plain_log_ticks(axes[1, 0].yaxis, positive)
    used: set[str] = set()
    zeros = False
    for col, solver in enumerate(knobbed):
        zeros |= _fidelity_knob_column(axes[:, col], solver, rows, used, log)
    if plain:
        zeros |= _fidelity_points(axes[:, -1], [r for r in rows if r["solver"] in plain], plain,
                                  used, log)  # fmt: skip
    axes[0, 0].set_ylabel("cosine similarity to MAML")
    axes[1, 0].set_ylabel(
        "relative error" + (" (log axis)" if log else "") + "\n‖g − g_MAML‖ / ‖g_MAML‖"
    )
    cosines = [num(r.get("cosine")) for r in rows]
    high, low = max(max(cosines), 1.0), min(cosines)
    axes[0, 0].set_ylim(low - 0.08 * (high - low or 1.0), high + 0.03 * (high - low or 1.0))
    notes = {"experiment": experiment, "hidden": hidden, "left_out": left_out}
    _fidelity_title_legend(fig, rows, point_counts, notes, used, zeros)
    return fig


def _fidelity_knob_column(
    axes: Any, solver: str, rows: list[dict[str, Any]], used: set[str], log: bool
) -> bool:
    """A solver with a knob: cosine (top) and relative error (bottom) against the knob,
    per kind of point (``used`` collects the kinds drawn). Whether zeros were drawn."""
    zeros = False
    mine = [r for r in rows if r["solver"] == solver and r.get("knob")]
    knob = mine[0]["knob"]
    color = solver_color(solver)
    for row_i, column in enumerate(("cosine", "rel_error")):
        ax = axes[row_i]
        for kind, linestyle, fill, _ in POINT_KINDS:
            means = _knob_means(mine, column, kind)
            if not means:
                continue
            used.add(kind)
            xs = sorted(means)
            ys = [sum(means[x]) / len(means[x]) for x in xs]
            face = color if fill == "full" else "white"
            shown = [
                (x, y) for x, y in zip(xs, ys) if not (log and column == "rel_error" and y <= 0)
            ]
            ax.plot(
                [x for x, _ in shown], [y for _, y in shown], linestyle=linestyle,
                marker=solver_marker(solver), color=color, markerfacecolor=face,
            )  # fmt: skip
            banded = [x for x in xs if not (log and column == "rel_error" and min(means[x]) <= 0)]
            if any(len(means[x]) > 1 for x in banded):
                lo = [min(means[x]) for x in banded]
                hi = [max(means[x]) for x in banded]
                ax.fill_between(banded, lo, hi, color=color, alpha=0.15, linewidth=0)
            if log and column == "rel_error":
                zeros |= bool(log_y_with_zeros(ax, xs, ys, color=color))
        if row_i == 1:
            param_axis(
                ax, knob, [num(r.get("knob_value")) for r in mine], solver=solver,
                label=f"{solver}: {knob}",
            )  # fmt: skip
        else:
            ax.tick_params(labelbottom=False)
        ax.grid(alpha=0.3, which="both")
        if not ax.has_data():
            empty(ax, "no finite values")
    axes[0].set_title(solver, color=color)
    return zeros


def _fidelity_title_legend(
    fig: Figure,
    rows: list[dict[str, Any]],
    point_counts: dict[str, int],
    notes: dict[str, Any],
    used: set[str],
    zeros: bool,
) -> None:
    """The figure's title (the comparison's settings, the points, what is not shown) and
    its legend (the kinds of point drawn, zeros, pseudo-gradients)."""
    experiment, hidden, left_out = notes["experiment"], notes["hidden"], notes["left_out"]
    first = rows[0]
    fig.suptitle(
        "Meta-gradient fidelity against exact MAML"
        + "".join(
            f"{', ' if i else ': '}{text.format(fmt(first[key]))}"
            for i, (key, text) in enumerate(
                (k, t) for k, t in _FIDELITY_TITLE if first.get(k) is not None
            )
        )
        + "\n"
        + ", ".join(f"{n} {what}" for what, n in point_counts.items() if n)
        + "; each row shares its y axis"
        + (f"; experiment {experiment}" if experiment else "")
        + (f"; {hidden} other comparison setting(s) not shown" if hidden else "")
        + (f"; not shown: {', '.join(left_out)}" if left_out else ""),
        fontsize="medium",
    )
    handles: list = [
        Line2D([], [], color="grey", linestyle=ls, marker="o",
               markerfacecolor="grey" if fill == "full" else "white", label=text)
        for kind, ls, fill, text in POINT_KINDS
        if kind in used
    ]  # fmt: skip
    if zeros:
        handles.append(zero_handle())
    if any(r.get("pseudo_gradient") for r in rows):
        handles.append(
            Line2D([], [], linestyle="", label="† pseudo-gradient: only its cosine is comparable")
        )
    legend(fig, handles, loc="outside lower center", ncol=2)


def _knob_means(mine: list[dict[str, Any]], column: str, kind: str) -> dict[float, list[float]]:
    """Knob value -> the values of ``column`` at the points of ``kind``."""
    out: dict[float, list[float]] = {}
    for r in mine:
        x, y = num(r.get("knob_value")), num(r.get(column))
        if _kind_of(r) == kind and math.isfinite(x) and math.isfinite(y):
            out.setdefault(x, []).append(y)
    return out


def _fidelity_points(
    axes: Sequence[Axes], rows: list[dict[str, Any]], solvers: list[str], used: set[str],
    log: bool,
) -> bool:  # fmt: skip
    """Solvers without a knob: one point per (solver, point kind), mean over points, on the
    row's shared y axis; True when a zero had to be drawn on a log axis's edge."""
    zeros = False
    names = [
        s + (" †" if any(r.get("pseudo_gradient") for r in rows if r["solver"] == s) else "")
        for s in solvers
    ]
    for ax, column in zip(axes, ("cosine", "rel_error")):
        for k, (kind, _, fill, _) in enumerate(POINT_KINDS):
            for i, solver in enumerate(solvers):
                values = [
                    num(r.get(column))
                    for r in rows
                    if r["solver"] == solver
                    and _kind_of(r) == kind
                    and not (column == "rel_error" and r.get("pseudo_gradient"))
                ]
                values = [v for v in values if math.isfinite(v)]
                if not values:
                    continue
                used.add(kind)
                x, y = i + (k - 0.5) * 0.25, sum(values) / len(values)
                color = solver_color(solver)
                if log and column == "rel_error" and y <= 0:
                    zeros |= bool(log_y_with_zeros(ax, [x], [y], color=color))
                    continue
                ax.plot(
                    [x], [y], marker=solver_marker(solver), markersize=9, linestyle="",
                    color=color, markerfacecolor=color if fill == "full" else "white",
                )  # fmt: skip
        ax.set_xticks(range(len(solvers)), names if column == "rel_error" else [""] * len(solvers))
        ax.set_xlim(-0.6, len(solvers) - 0.4)
        ax.grid(alpha=0.3, axis="y", which="both")
        if column == "cosine":
            ax.set_title("no knob")
        else:
            ax.set_xlabel("solvers without a knob")
        if not ax.has_data():
            empty(ax, "no finite values")
    return zeros


@figure_kind("fidelity", order=50)
def fidelity_figures(ctx: PlotContext) -> Iterator[Planned]:
    table = ctx.table("fidelity")
    if not table.num_rows:
        raise NothingToPlot("no fidelity table (raybench fidelity)")
    yield Planned("fidelity", "fidelity", lambda: fidelity_figure(table, experiment=ctx.name))
