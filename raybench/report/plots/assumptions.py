"""The implicit solvers' assumptions over training: one figure per experiment.

Drawn from the ``diag_*`` columns of the ``curves`` table (:mod:`raybench.assumptions`):
for every configuration of an implicit solver, at each evaluation point, the stationarity
residual of the inner problem, the support Hessian's extreme eigenvalues, the smallest
eigenvalue of ``I + H/lam`` (which must stay above 0), the spectral radius ``rho(H/lam)``
(below 1 for the Neumann series), the relative residual of the linear solve, and the
linear solver's iterations with the tasks whose CG stopped at negative curvature. Each line
is the mean over seeds; the dotted lines are the thresholds of the checks. A solver with one
configuration keeps its colour from the other figures; several configurations of one solver
get one colour each.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from raybench.assumption_checks import SOLVE_TOL, STATIONARITY_TOL, solver_assumptions
from raybench.report.plots.groups import RunGroup
from raybench.report.plots.registry import Planned, PlotContext, figure_kind
from raybench.report.plots.style import NothingToPlot, new_figure, solver_color

# (column, panel title, y scale, threshold line and which side is fine)
PANELS: tuple[tuple[str, str, str, float | None], ...] = (
    ("diag_stationarity", "inner problem: ||grad F(phi)|| / ||grad F(theta)||", "log",
     STATIONARITY_TOL),
    ("diag_hessian", "support Hessian: extreme eigenvalues (Lanczos)", "symlog", None),
    ("diag_convexity", "smallest eigenvalue of I + H/lam (> 0 needed)", "linear", 0.0),
    ("diag_spectral_radius", "rho(H/lam) = rho(alpha H) (< 1 for the series)", "log", 1.0),
    ("diag_solve_residual", "linear solve: ||A g - b|| / ||b||", "log", SOLVE_TOL),
    ("diag_solve_iterations", "solver iterations (o: tasks at negative curvature)", "linear",
     None),
)  # fmt: skip


def _value(row: dict[str, Any], column: str) -> float:
    value = row.get(column)
    if value is None or isinstance(value, bool):
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _mean_by_step(group: RunGroup, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps with a measurement, and the mean of the finite values over seeds."""
    by_step: dict[int, list[float]] = {}
    for rows in group.curves.values():
        for row in rows:
            if row.get("diag_tasks"):
                value = _value(row, column)
                if not math.isnan(value):
                    by_step.setdefault(int(row["step"]), []).append(value)
    steps = sorted(by_step)
    return np.array(steps, dtype=float), np.array([np.mean(by_step[s]) for s in steps])


def measured_groups(groups: Sequence[RunGroup]) -> list[RunGroup]:
    """The configurations whose curves carry assumption measurements."""
    return [
        g for g in groups if any(r.get("diag_tasks") for rows in g.curves.values() for r in rows)
    ]


def _colors(groups: Sequence[RunGroup]) -> list[str]:
    configs = Counter(g.solver for g in groups)
    return [
        solver_color(g.solver) if configs[g.solver] == 1 else f"C{i % 10}"
        for i, g in enumerate(groups)
    ]


def assumptions_figure(groups: Sequence[RunGroup], *, experiment: str = "") -> Figure:
    """Six panels over meta-steps, one line per configuration of an implicit solver."""
    groups = measured_groups(groups)
    if not groups:
        raise NothingToPlot("no implicit solver's assumption measurements in the curves")
    fig, grid = new_figure(2, 3)
    axes = grid.ravel()
    colors = _colors(groups)
    for ax, (column, title, scale, threshold) in zip(axes, PANELS):
        for group, color in zip(groups, colors):
            if column == "diag_hessian":
                for part, style in (("diag_hessian_max", "-"), ("diag_hessian_min", "--")):
                    steps, mean = _mean_by_step(group, part)
                    ax.plot(steps, mean, style, color=color, marker=".")
                continue
            steps, mean = _mean_by_step(group, column)
            if scale == "log":
                mean = np.where(mean > 0, mean, np.nan)
            ax.plot(steps, mean, color=color, marker=".")
            if column == "diag_solve_iterations":
                steps, stopped = _mean_by_step(group, "diag_negative_curvature")
                hit = stopped > 0
                at = np.interp(steps[hit], *_mean_by_step(group, column))
                ax.scatter(steps[hit], at, s=20 + 10 * stopped[hit], facecolors="none",
                           edgecolors=color)  # fmt: skip
        if threshold is not None:
            ax.axhline(threshold, color="black", linestyle=":", linewidth=1)
        if column == "diag_hessian":
            ax.axhline(0, color="black", linestyle=":", linewidth=1)
        ax.set_yscale(scale)
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("meta-step", fontsize="small")
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=c, label=f"{g.label} ({g.seed_text()})")
        for g, c in zip(groups, colors)
    ]
    handles += [
        Line2D([], [], color="grey", linestyle="-", label="largest eigenvalue"),
        Line2D([], [], color="grey", linestyle="--", label="smallest eigenvalue"),
        Line2D([], [], color="black", linestyle=":", label="threshold of the check"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
               fontsize="small")  # fmt: skip
    tasks = sorted({int(r["diag_tasks"]) for g in groups for rows in g.curves.values()
                    for r in rows if r.get("diag_tasks")})  # fmt: skip
    fig.suptitle(
        "Implicit solvers' assumptions over training, worst of "
        f"{'/'.join(map(str, tasks))} fixed validation tasks, mean over seeds; "
        f"{groups[0].setting()}" + (f"; experiment {experiment}" if experiment else ""),
        fontsize="medium",
    )
    return fig


@figure_kind("assumptions", order=35)
def assumptions_figures(ctx: PlotContext) -> Iterator[Planned]:
    """Only for experiments with an implicit solver: for the others it is no omission."""
    if not any(solver_assumptions(g.solver) for g in ctx.groups):
        return
    yield Planned(
        "implicit solvers' assumptions",
        "assumptions",
        lambda: assumptions_figure(ctx.groups, experiment=ctx.name),
    )
