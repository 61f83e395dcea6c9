"""Figures of an experiment's runs: each configuration's training curves, every
configuration's validation accuracy, and test accuracy against wall time."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from raybench.report.plots.groups import (
    RunGroup,
    divergence_steps,
    group_styles,
    num,
    series,
    slugify,
    summary,
)
from raybench.report.plots.labels import place_labels
from raybench.report.plots.registry import Planned, PlotContext, figure_kind
from raybench.report.plots.style import (
    DIVERGED_COLOR,
    MAX_BANDS,
    NothingToPlot,
    chance_lines,
    empty,
    fit_percent_axis,
    integer_ticks,
    legend,
    new_figure,
    time_axis,
)

BAND = "band: range over seeds"


# -- drawing a configuration's series -----------------------------------------------------


def draw_series(ax: Axes, group: RunGroup, column: str, *, band: bool = True, **style: Any) -> bool:
    """Mean over seeds as a line through its finite points (markers when there are few),
    the range over seeds as a band where two or more seeds have a value; False when
    nothing is finite."""
    steps, mean, lo, hi, count = series(group, column)
    ok = np.isfinite(mean)
    if not ok.any():
        return False
    style = dict(style)
    if ok.sum() == 1:
        style.setdefault("marker", "o")
    elif ok.sum() > 12:  # markers only where they can be told apart
        style.pop("marker", None)
        style.pop("markerfacecolor", None)
    ax.plot(steps[ok], mean[ok], **style)
    several = ok & (count >= 2)
    if band and several.any():
        ax.fill_between(
            steps[several], lo[several], hi[several], color=style.get("color"), alpha=0.18,
            linewidth=0,
        )  # fmt: skip
    return True


def _mark_divergence(axes: Sequence[Axes], group: RunGroup, label_ax: Axes | None) -> int:
    found = divergence_steps(group)
    for i, (step, seed) in enumerate(found):
        for ax in axes:
            ax.axvline(step, color=DIVERGED_COLOR, linestyle=":", linewidth=1.5)
        if label_ax is not None:
            label_ax.annotate(
                f"diverged (seed {seed})", (step, 1 - 0.07 * (i + 1)),
                xycoords=("data", "axes fraction"), color=DIVERGED_COLOR, ha="right",
                fontsize="small",
            )  # fmt: skip
    return len(found)


# -- one configuration's curves (the report's Figures 1-8) -------------------------------

# (column pattern, legend name, colour): ``{where}`` is train or val, ``{what}`` loss or acc.
CURVE_KINDS = (
    ("{where}_support_{what}_pre", "support set, before adaptation", "#9ecae1"),
    ("{where}_support_{what}_post", "support set, after adaptation", "#2171b5"),
    ("{where}_query_{what}_pre", "query set, before adaptation", "#fdae6b"),
    ("{where}_query_{what}_post", "query set, after adaptation", "#d94801"),
    # The fine-tuning baselines' training step: an ordinary classifier on training images.
    ("{where}_classifier_{what}", "pre-training classifier (its batch of images)", "#6a3d9a"),
)
WHERES = (
    ("train", "training batches (mean over each evaluation interval)"),
    ("val", "fixed validation tasks"),
)


def curves_figure(group: RunGroup, *, experiment: str = "") -> Figure:
    """The report's four curves for one configuration: losses (top) and accuracies (bottom)
    of the support and query sets before and after adaptation, on the training batches
    (left) and on the fixed validation tasks (right); mean over seeds, with the range over
    seeds as a band for the after-adaptation curves."""
    if not group.curves:
        raise NothingToPlot(f"{group.label}: no curve rows stored")
    # A baseline's training step is a classifier over every training class: its loss and
    # accuracy are not on the scale of an N-way task's, so its panels keep their own y axes.
    classifier = np.isfinite(series(group, "train_classifier_loss")[1]).any()
    fig, axes = new_figure(2, 2, sharex=True, sharey=False if classifier else "row")
    band = group.n_seeds > 1
    shown: dict[str, str] = {}
    covering: set[str] = set()  # curves drawn dashed over an identical one
    for col, (where, title) in enumerate(WHERES):
        for row, what in enumerate(("loss", "acc")):
            ax = axes[row, col]
            drawn: list[tuple[str, np.ndarray, np.ndarray]] = []
            for pattern, name, color in CURVE_KINDS:
                column = pattern.format(where=where, what=what)
                after = column.endswith("_post")
                steps, mean, *_ = series(group, column)
                ok = np.isfinite(mean)
                under = [n for n, s, m in drawn if _same(s, m, steps[ok], mean[ok])]
                style: dict[str, Any] = {"color": color}
                if under:  # it lies on a curve drawn before: dashed over it, both visible
                    style.update(linestyle=(0, (4, 4)), linewidth=1.3, zorder=3)
                    covering.add(name)
                if draw_series(ax, group, column, band=band and after, **style):
                    shown[name] = color
                    drawn.append((name, steps[ok], mean[ok]))
            if not ax.has_data():
                empty(ax, "nothing stored here")
        axes[0, col].set_title(title, fontsize="medium")
    for ax in axes[1]:
        ax.set_xlabel("meta-step")
        integer_ticks(ax.xaxis)
    axes[0, 0].set_ylabel("cross-entropy loss (nats)")
    if classifier:
        axes[0, 0].set_title(
            f"{WHERES[0][1]}\nthe pre-training classifier over all training classes (own y scales)",
            fontsize="medium",
        )
        fit_percent_axis([axes[1, 0]], "accuracy (%)")
        fit_percent_axis([axes[1, 1]], "accuracy (%)")
    else:
        fit_percent_axis(list(axes[1]), "accuracy (%)")
    handles: list = [
        Line2D([], [], color=c, label=n + (" (dashed where it lies on another)"
                                           if n in covering else ""))
        for n, c in shown.items()
    ]  # fmt: skip
    handles += chance_lines(list(axes[1]), [group.value("ways")])
    if band:
        handles.append(Patch(color="grey", alpha=0.3, label=f"{BAND} (after adaptation)"))
    diverged = _mark_divergence(list(axes.flat), group, axes[1, 1])
    if diverged:
        handles.append(
            Line2D([], [], color=DIVERGED_COLOR, linestyle=":", label="run diverged here")
        )
    status = f"; {diverged} diverged" if diverged else ""
    fig.suptitle(
        f"{group.label} [{group.family or 'family ?'}]: {group.setting()}, "
        f"{group.seed_text()}{status}" + (f"\nexperiment {experiment}" if experiment else "")
    )
    legend(fig, handles, loc="outside lower center", ncol=3)
    return fig


def _same(xs: np.ndarray, ys: np.ndarray, xs2: np.ndarray, ys2: np.ndarray) -> bool:
    """Whether two mean curves coincide (same steps, values within 0.1%): one would hide
    the other."""
    if len(xs) == 0 or len(xs) != len(xs2) or not np.array_equal(xs, xs2):
        return False
    return bool(np.allclose(ys, ys2, rtol=1e-3, atol=1e-6))


# -- every configuration's validation accuracy ---------------------------------------------

VALIDATION = "val_query_acc_post"


def validation_figure(groups: Sequence[RunGroup], *, experiment: str = "") -> Figure:
    """Every configuration's validation accuracy (query set after adaptation) over
    meta-steps: one panel with bands for up to ``MAX_BANDS`` configurations, else one small
    panel per configuration (the others in light grey behind it), on shared axes."""
    drawable = [g for g in groups if np.isfinite(series(g, VALIDATION)[1]).any()]
    if not drawable:
        raise NothingToPlot("no finite validation accuracy in the curves")
    styles = dict(zip((id(g) for g in groups), group_styles(groups)))
    handles: list = []
    if len(drawable) <= MAX_BANDS:
        fig, axes = new_figure()
        panels = [axes[0, 0]]
        for group in drawable:
            _validation_line(panels[0], group, styles[id(group)], band=True)
    else:
        nrows = math.ceil(len(drawable) / 4)
        ncols = math.ceil(len(drawable) / nrows)
        fig, axes = new_figure(nrows, ncols, sharex=True, sharey=True)
        panels = list(axes.flat)[: len(drawable)]
        for ax, group in zip(panels, drawable):
            for other in drawable:
                if other is not group:
                    draw_series(ax, other, VALIDATION, band=False, color="#d0d0d0", linewidth=1)
            _validation_line(ax, group, styles[id(group)], band=True)
            ax.set_title(group.label, fontsize="small", color=styles[id(group)]["color"])
        for ax in list(axes.flat)[len(drawable) :]:
            ax.set_axis_off()
        for i, ax in enumerate(panels):
            integer_ticks(ax.xaxis, nbins=4)  # narrow panels: few, readable ticks
            if i + ncols >= len(panels):  # the lowest panel of its column
                ax.xaxis.set_tick_params(labelbottom=True)
                ax.set_xlabel("meta-step")
        handles.append(Line2D([], [], color="#d0d0d0", label="the other configurations"))
    for group in drawable:
        note = f", {len(group.diverged)} diverged" if group.diverged else ""
        st = styles[id(group)]
        handles.append(
            Line2D([], [], color=st["color"], linestyle=st["linestyle"],
                   label=f"{group.label}: {group.seed_text()}{note}")
        )  # fmt: skip
    fit_percent_axis(panels, "validation accuracy (%)")
    handles += chance_lines(panels, [g.value("ways") for g in drawable])
    if any(g.diverged for g in drawable):
        handles.append(
            Line2D([], [], color=DIVERGED_COLOR, marker="x", linestyle="", label="diverged")
        )
    if any(g.n_seeds > 1 for g in drawable):
        handles.append(Patch(color="grey", alpha=0.3, label=BAND))
    for ax in panels:
        ax.grid(alpha=0.3)
        if len(panels) == 1:
            integer_ticks(ax.xaxis)
        if len(panels) == 1:
            ax.set_xlabel("meta-step")
    left_out = [g.label for g in groups if g not in drawable]
    fig.suptitle(
        "Validation accuracy (query set after adaptation, fixed validation tasks)\n"
        f"{summary(groups)}" + (f"; experiment {experiment}" if experiment else "")
        + (f"; no curve: {', '.join(left_out)}" if left_out else ""),
        fontsize="medium",
    )  # fmt: skip
    legend(fig, handles)
    return fig


def _validation_line(ax: Axes, group: RunGroup, style: dict[str, Any], *, band: bool) -> None:
    draw_series(
        ax, group, VALIDATION, band=band and group.n_seeds > 1, color=style["color"],
        linestyle=style["linestyle"], linewidth=1.8, marker=style["marker"],
    )  # fmt: skip
    steps, mean, *_ = series(group, VALIDATION)
    ok = np.isfinite(mean)
    for step, _seed in divergence_steps(group):
        before = ok & (steps <= step)
        if before.any():
            y = mean[before][-1]
            ax.plot([step], [y], marker="x", markersize=10, color=DIVERGED_COLOR, mew=2)


# -- accuracy against cost -----------------------------------------------------------------


def accuracy_time_figure(groups: Sequence[RunGroup], *, experiment: str = "") -> Figure:
    """Test accuracy against wall time per run, one point per configuration at its mean
    over seeds; every error bar is the same thing, the 95% interval over the test tasks
    (averaged over seeds), and each seed is a small point of its own."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    handles: list = []
    points: list[tuple[float, float]] = []
    texts: list[str] = []
    colors: list[Any] = []
    seconds: list[float] = []
    left_out: list[str] = []
    measured = []
    for group, style in zip(groups, group_styles(groups)):
        runs = [
            (num(r.get("wall_time_s")), num(r.get("test_acc_mean")), num(r.get("test_acc_ci95")))
            for r in group.runs
            if r.get("status") == "completed"
        ]
        runs = [p for p in runs if math.isfinite(p[0]) and math.isfinite(p[1])]
        if runs:
            measured.append((group, style, runs))
            seconds += [t for t, _, _ in runs]
        else:
            left_out.append(group.label)
    if not measured:
        raise NothingToPlot("no completed run with a test accuracy and a wall time")
    div = time_axis(ax, seconds, "wall time per run")
    for group, style, runs in measured:
        t = np.array([p[0] for p in runs]) / div
        acc = np.array([p[1] for p in runs])
        cis = [p[2] for p in runs if math.isfinite(p[2])]
        x, y = float(t.mean()), float(acc.mean())
        ci = sum(cis) / len(cis) if cis else None
        color = style["color"]
        if len(runs) > 1:
            ax.plot(t, acc, linestyle="", marker=style["marker"], markersize=4, alpha=0.5,
                    color=color, markerfacecolor="none")  # fmt: skip
        ax.errorbar(
            x, y, yerr=None if ci is None else [[ci], [ci]], fmt=style["marker"], color=color,
            markerfacecolor=style["markerfacecolor"], capsize=4, markersize=9,
        )  # fmt: skip
        points.append((x, y))
        texts.append(group.label)
        colors.append(color)
        note = f", {len(group.diverged)} diverged (not shown)" if group.diverged else ""
        interval = "" if ci is not None else ", no interval stored"
        handles.append(
            Line2D(
                [], [], color=color, marker=style["marker"], linestyle="",
                markerfacecolor=style["markerfacecolor"],
                label=f"{group.label}: {len(runs)} seed{'s' if len(runs) > 1 else ''}"
                f"{note}{interval}",
            )
        )  # fmt: skip
    if any(len(runs) > 1 for _, _, runs in measured):
        handles.append(
            Line2D([], [], color="grey", marker="o", markersize=4, linestyle="",
                   markerfacecolor="none", label="one seed")
        )  # fmt: skip
    if left_out:
        handles.append(
            Line2D([], [], linestyle="", label=f"no test accuracy: {', '.join(left_out)}")
        )
    ax.set_xlim(left=0)
    fit_percent_axis([ax], "test accuracy (%)")
    handles += chance_lines([ax], [g.value("ways") for g, _, _ in measured])
    ax.grid(alpha=0.3)
    ax.set_title(
        "Test accuracy against wall time (error bars: 95% interval over the test tasks, "
        "mean over seeds)\n"
        f"{summary(groups)}" + (f"; experiment {experiment}" if experiment else ""),
        fontsize="medium",
    )
    legend(fig, handles)
    place_labels(ax, points, texts, colors=colors)
    return fig


# -- the figure kind: every run figure an experiment has ---------------------------------


@figure_kind("runs", order=10)
def run_figures(ctx: PlotContext) -> Iterator[Planned]:
    """Curves per configuration; per preset, validation accuracy and accuracy vs time."""
    groups = ctx.groups
    if not groups:
        raise NothingToPlot(
            "curves, validation accuracy, accuracy vs time: no completed or diverged runs"
        )
    for group in groups:
        yield Planned(
            f"curves of {group.label}",
            f"curves-{group.slug}",
            lambda g=group: curves_figure(g, experiment=ctx.name),
        )
    # Several presets (``raybench run --matrix``): one comparison figure per preset.
    presets = list(dict.fromkeys(str(g.config.get("preset")) for g in groups))
    for preset in presets:
        mine = [g for g in groups if str(g.config.get("preset")) == preset]
        suffix = f"-{slugify(preset)}" if len(presets) > 1 else ""
        where = f" ({preset})" if suffix else ""
        yield Planned(
            f"validation accuracy{where}",
            f"validation-accuracy{suffix}",
            lambda m=mine: validation_figure(m, experiment=ctx.name),
        )
        yield Planned(
            f"accuracy vs time{where}",
            f"accuracy-vs-time{suffix}",
            lambda m=mine: accuracy_time_figure(m, experiment=ctx.name),
        )
