"""PNG figures of an experiment, drawn from its Parquet store alone (``raybench plot``).

One function per figure kind, each writing one PNG and returning its path; ``plot_experiment``
writes every figure whose data the experiment has and says why it skips the others. Every
figure has the same pixel size (``PIXELS``) so that a folder of them reads like a report, and
every title says solver, preset, setting and seed count. Figures are drawn on plain
``matplotlib.figure.Figure`` objects (never pyplot's global state) with the Agg renderer, so
plotting works headless, in threads and in long-lived processes alike.

Runs of one configuration (same solver, ``config_fingerprint`` and ``source``) differ only by
seed and are drawn as their mean with the range over seeds as a band. Values that are not
finite (a diverged run's last rows) are left out, and the step where a run diverged is
marked.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from raybench.results.store import ExperimentStore
from raybench.solvers.base import family_rank

if "matplotlib.pyplot" not in sys.modules:  # never switch an interactive session's backend
    matplotlib.use("Agg")

FIGSIZE = (12.0, 6.0)  # inches
DPI = 100
PIXELS = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))  # (width, height) of every PNG

# The report's four curves (Figures 1-8), with its names in brackets.
CURVE_KINDS = (
    ("support", "pre", "support, before adaptation [Train pre]"),
    ("support", "post", "support, after adaptation [Train post]"),
    ("query", "pre", "query, before adaptation [Test pre]"),
    ("query", "post", "query, after adaptation [Test post]"),
)
CURVE_COLORS = ("#9ecae1", "#2171b5", "#fdae6b", "#d94801")
WHERE_STYLES = {"train": "-", "val": "--"}
WHERE_NAMES = {"train": "training batches (interval mean)", "val": "fixed validation tasks"}
STATUS_COLORS = {
    "completed": "#2ca02c",
    "stopped": "#7f7f7f",
    "diverged": "#d62728",
    "errored": "#000000",
}
DIVERGED_COLOR = "#d62728"
BAND = "band: range over seeds"

# Config keys that never tell two configurations apart in a label.
_NOT_A_SETTING = {"seed", "device", "solver", "solver_options"}


class NothingToPlot(ValueError):
    """The experiment lacks the data of a figure; the message says what is missing."""


# -- reading the store --------------------------------------------------------------------


def _num(value: Any) -> float:
    """A finite float, or NaN for None, NaN, infinities and anything not a number."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist() if table.num_rows else []


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _config(row: dict[str, Any]) -> dict[str, Any]:
    """A run's settings, flat: the stored config JSON (solver options as ``<knob>``), else
    whatever setting columns an older store has."""
    from raybench.config import RUN_BOUNDS

    try:
        data = json.loads(row.get("config_json") or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict) or not data:
        data = {k: row[k] for k in (*RUN_BOUNDS, "preset") if row.get(k) is not None}
    options = data.pop("solver_options", None) or {}
    flat = {k: v for k, v in data.items() if k not in _NOT_A_SETTING}
    if isinstance(options, dict):
        flat.update({str(k): v for k, v in options.items()})
    flat["source"] = row.get("source") or "preset"
    return flat


@dataclass
class RunGroup:
    """The runs of one configuration of one solver: they differ only by seed."""

    solver: str
    family: str
    key: str
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    label: str = ""
    slug: str = ""

    @property
    def seeds(self) -> list[int]:
        return sorted({int(r["seed"]) for r in self.runs if r.get("seed") is not None})

    @property
    def n_seeds(self) -> int:
        return max(len(self.seeds), 1 if self.runs else 0)

    @property
    def diverged(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") == "diverged"]

    def value(self, key: str) -> Any:
        return self.config.get(key, self.runs[0].get(key) if self.runs else None)

    def setting(self) -> str:
        """``preset paper, 5-way 1-shot`` (what is known of it)."""
        parts = []
        if self.value("preset") is not None:
            parts.append(f"preset {self.value('preset')}")
        ways, shots = self.value("ways"), self.value("shots")
        if ways is not None and shots is not None:
            parts.append(f"{ways}-way {shots}-shot")
        if self.config.get("source") not in (None, "preset"):
            parts.append(str(self.config["source"]))
        return ", ".join(parts) or "setting unknown"

    def seed_text(self) -> str:
        seeds = self.seeds
        text = f"{self.n_seeds} seed" + ("s" if self.n_seeds != 1 else "")
        if seeds:
            text += f" ({', '.join(map(str, seeds))})"
        return text


def run_groups(runs: pa.Table, curves: pa.Table | None = None) -> list[RunGroup]:
    """Completed and diverged runs grouped by configuration (failed runs are left out),
    each with its curve rows sorted by step and a label that tells it from the others."""
    groups: dict[tuple, RunGroup] = {}
    for row in _rows(runs):
        if row.get("status") not in ("completed", "diverged") or not row.get("solver"):
            continue
        config = _config(row)
        fingerprint = row.get("config_fingerprint") or json.dumps(config, sort_keys=True)
        key = (row["solver"], fingerprint, config["source"])
        if key not in groups:
            groups[key] = RunGroup(
                solver=str(row["solver"]),
                family=str(row.get("family") or ""),
                key=str(row.get("config_fingerprint") or ""),
                config=config,
            )
        groups[key].runs.append(row)
    by_run = {r.get("run_id"): g for g in groups.values() for r in g.runs}
    for row in _rows(curves) if curves is not None else []:
        group = by_run.get(row.get("run_id"))
        if group is not None and row.get("step") is not None:
            group.curves.setdefault(str(row["run_id"]), []).append(row)
    out = sorted(groups.values(), key=lambda g: (family_rank(g.family), g.solver, g.key))
    for group in out:
        group.runs.sort(key=lambda r: (r.get("seed") or 0, str(r.get("run_id"))))
        for rows in group.curves.values():
            rows.sort(key=lambda r: r["step"])
    _name_groups(out)
    return out


_SETTING_KEYS = ("preset", "ways", "shots", "source")


def _names(groups: Sequence[RunGroup]) -> list[tuple[str, str]]:
    """(label, file-name suffix) of each group among ``groups``: the solver, plus what tells
    its configuration from the others shown with it: the preset and source where they vary,
    ways and shots where they vary within a preset, and any other setting where it varies
    between configurations of the same solver, preset and source."""

    def varies(members: Sequence[RunGroup], key: str) -> bool:
        return len({json.dumps(g.config.get(key), sort_keys=True) for g in members}) > 1

    vary_preset = varies(groups, "preset")
    vary_source = varies(groups, "source")
    names = []
    for group in groups:
        preset = [g for g in groups if g.config.get("preset") == group.config.get("preset")]
        same = [
            g
            for g in groups
            if g.solver == group.solver
            and all(g.config.get(k) == group.config.get(k) for k in _SETTING_KEYS)
        ]
        parts: list[tuple[str, str]] = []  # (label text, file-name text)
        if vary_preset:
            parts.append((str(group.config.get("preset")), str(group.config.get("preset"))))
        if varies(preset, "ways") or varies(preset, "shots"):
            ways, shots = group.config.get("ways"), group.config.get("shots")
            parts.append((f"{ways}-way {shots}-shot", f"{ways}w{shots}s"))
        if vary_source:
            parts.append((str(group.config.get("source")), str(group.config.get("source"))))
        keys = sorted(
            k
            for k in set().union(*(g.config for g in same))
            if k not in _SETTING_KEYS and varies(same, k)
        )
        shown = [
            (f"{k}={_fmt(group.config.get(k))}", f"{k}{_fmt(group.config.get(k))}") for k in keys
        ]
        if len(shown) > 3:  # too many to read: the first ones and the fingerprint
            shown = [*shown[:2], (f"config {group.key}", group.key)]
        parts += shown
        label = group.solver + (f" ({', '.join(p for p, _ in parts)})" if parts else "")
        slug = "-".join(_slug(s) for _, s in parts)
        if len(slug) > 40:
            slug = _slug(group.key) or slug[:40]
        names.append((label, group.solver + (f"-{slug}" if slug else "")))
    seen: dict[str, int] = {}
    for _, slug in names:
        seen[slug] = seen.get(slug, 0) + 1
    return [  # still the same name: add the fingerprint
        (label, f"{slug}-{_slug(g.key)}" if seen[slug] > 1 and g.key else slug)
        for (label, slug), g in zip(names, groups)
    ]


def _name_groups(groups: Sequence[RunGroup]) -> None:
    for group, (label, slug) in zip(groups, _names(groups)):
        group.label, group.slug = label, slug


def _file(stem: str, suffix: str = "") -> str:
    return f"{stem}-{_slug(suffix)}.png" if suffix else f"{stem}.png"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")


# -- drawing helpers ----------------------------------------------------------------------


def _figure(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    """Write atomically (a hidden temporary file, then a rename) at the fixed pixel size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": "raybench"})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _series(
    group: RunGroup, column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps and, per step, the mean, min, max and count of the finite values over seeds
    (computed by hand: numpy's nan-functions warn on all-NaN columns)."""
    steps = sorted({int(r["step"]) for rows in group.curves.values() for r in rows})
    if not steps:
        empty = np.zeros(0)
        return empty, empty, empty, empty, empty
    index = {s: i for i, s in enumerate(steps)}
    values = np.full((max(len(group.curves), 1), len(steps)), np.nan)
    for i, rows in enumerate(group.curves.values()):
        for r in rows:
            values[i, index[int(r["step"])]] = _num(r.get(column))
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    safe = np.where(finite, values, 0.0)
    mean = np.divide(safe.sum(axis=0), count, out=np.full(len(steps), np.nan), where=count > 0)
    lo = np.where(finite, values, np.inf).min(axis=0)
    hi = np.where(finite, values, -np.inf).max(axis=0)
    lo[count == 0], hi[count == 0] = np.nan, np.nan
    return np.asarray(steps, dtype=float), mean, lo, hi, count


def _draw_series(
    ax: Axes,
    group: RunGroup,
    column: str,
    *,
    band: bool = True,
    **style: Any,
) -> bool:
    """Mean over seeds as a line through its finite points, the range over seeds as a band
    where two or more seeds have a value; False when nothing is finite."""
    steps, mean, lo, hi, count = _series(group, column)
    ok = np.isfinite(mean)
    if not ok.any():
        return False
    ax.plot(steps[ok], mean[ok], marker="o" if ok.sum() == 1 else None, **style)
    several = ok & (count >= 2)
    if band and several.any():
        ax.fill_between(
            steps[several],
            lo[several],
            hi[several],
            color=style.get("color"),
            alpha=0.2,
            linewidth=0,
        )
    return True


def _divergence_steps(group: RunGroup) -> list[tuple[int, Any]]:
    """(step, seed) where each diverged run of the group stopped."""
    out = []
    for run in group.diverged:
        rows = group.curves.get(str(run.get("run_id")), [])
        step = rows[-1]["step"] if rows else run.get("steps_done")
        if step is not None:
            out.append((int(step), run.get("seed")))
    return out


def _legend(fig: Figure, handles: list, **kw: Any) -> None:
    """A figure legend outside the axes, only when there is something to explain."""
    handles = [h for h in handles if h.get_label() and not h.get_label().startswith("_")]
    if handles:
        kw.setdefault("loc", "outside right upper")
        fig.legend(handles=handles, fontsize="small", **kw)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def _chance(ax: Axes, groups: Iterable[RunGroup]) -> list[Line2D]:
    handles = []
    for ways in sorted({int(w) for g in groups if (w := g.value("ways")) is not None}):
        handles.append(
            ax.axhline(
                100 / ways, color="grey", linestyle=":", linewidth=1, label=f"chance ({ways}-way)"
            )
        )
    return handles


def _colors(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _summary(groups: Sequence[RunGroup]) -> str:
    """``preset paper, 5-way 1-shot, 1-3 seeds per configuration``."""

    def values(key: str) -> str:
        seen = sorted({str(v) for g in groups if (v := g.value(key)) is not None})
        return "/".join(seen) if seen else "?"

    seeds = sorted({g.n_seeds for g in groups})
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    plural = "s" if seeds[-1] != 1 else ""
    return (
        f"preset {values('preset')}, {values('ways')}-way {values('shots')}-shot, "
        f"{seed_text} seed{plural} per configuration"
    )


def _plain_log_ticks(axis: Any, positive: Sequence[float]) -> None:
    """Log-axis ticks as plain numbers, at 1-2-5 when the values span few decades."""
    if positive and max(positive) / min(positive) < 1000:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _scale_x(ax: Axes, values: Sequence[float], *, at_values: bool = False) -> None:
    """Log scale for values that span decades (a learning rate, CG steps 1-20), symlog when
    zero is among them (a penalty weight of 0), linear otherwise; tick labels as plain
    numbers (at the values themselves when ``at_values`` and they are few)."""
    finite = [v for v in values if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    distinct = sorted(set(finite))
    if len(positive) >= 2 and max(positive) / min(positive) >= 10 and min(finite) >= 0:
        if min(finite) == 0:
            ax.set_xscale("symlog", linthresh=min(positive))
        else:
            ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, positive)
    if at_values and 0 < len(distinct) <= 8:
        ax.set_xticks(distinct, [f"{v:g}" for v in distinct])
        ax.xaxis.set_minor_formatter(NullFormatter())


# -- per-solver curves (the report's Figures 1-8) ------------------------------------------


def plot_curves(group: RunGroup, out_dir: Path, *, experiment: str = "") -> Path:
    """The report's four curves for one configuration: losses and accuracies of the support
    and query sets before and after adaptation, on the training batches (solid) and on the
    fixed validation tasks (dashed), mean over seeds with the range as a band."""
    if not group.curves:
        raise NothingToPlot(f"{group.label}: no curve rows stored")
    fig, axes = _figure(1, 2)
    loss_ax, acc_ax = axes[0]
    drawn = {"train": False, "val": False}
    filled = {"loss": False, "acc": False}
    shown: set[str] = set()  # the curve kinds with a finite value (baselines: no "pre")
    band = group.n_seeds > 1
    for (part, when, name), color in zip(CURVE_KINDS, CURVE_COLORS):
        for where, style in WHERE_STYLES.items():
            for ax, kind in ((loss_ax, "loss"), (acc_ax, "acc")):
                metric = f"{where}_{part}_{kind}_{when}"
                if _draw_series(ax, group, metric, band=band, color=color, linestyle=style):
                    drawn[where] = filled[kind] = True
                    shown.add(name)
    loss_ax.set_title("Losses")
    loss_ax.set_ylabel("cross-entropy loss (nats)")
    acc_ax.set_title("Accuracies")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_ylim(0, 100)
    handles: list = [
        Line2D([], [], color=c, label=name)
        for (_, _, name), c in zip(CURVE_KINDS, CURVE_COLORS)
        if name in shown
    ]
    handles += [
        Line2D([], [], color="black", linestyle=WHERE_STYLES[w], label=WHERE_NAMES[w])
        for w in WHERE_STYLES
        if drawn[w]
    ]
    handles += _chance(acc_ax, [group])
    if band:
        handles.append(Patch(color="grey", alpha=0.3, label=BAND))
    divergences = _divergence_steps(group)
    for i, (step, seed) in enumerate(divergences):
        for ax in (loss_ax, acc_ax):
            ax.axvline(step, color=DIVERGED_COLOR, linestyle=":", linewidth=1.5)
        acc_ax.annotate(
            f"diverged (seed {seed})",
            (step, 95 - 6 * i),
            color=DIVERGED_COLOR,
            ha="right",
            fontsize="small",
        )
    if divergences:
        handles.append(
            Line2D([], [], color=DIVERGED_COLOR, linestyle=":", label="run diverged here")
        )
    for ax, kind in ((loss_ax, "loss"), (acc_ax, "acc")):
        ax.set_xlabel("meta-step")
        ax.grid(alpha=0.3)
        if not filled[kind]:
            _empty(ax, "no finite values")
    status = f"; {len(divergences)} diverged" if divergences else ""
    fig.suptitle(
        f"{group.label} [{group.family or 'family ?'}]: {group.setting()}, "
        f"{group.seed_text()}{status}" + (f"\nexperiment {experiment}" if experiment else "")
    )
    _legend(fig, handles, loc="outside lower center", ncol=4)
    return _save(fig, out_dir / f"curves-{group.slug}.png")


# -- every solver's validation accuracy ----------------------------------------------------


def plot_validation_accuracy(
    groups: Sequence[RunGroup], out_dir: Path, *, experiment: str = "", suffix: str = ""
) -> Path:
    """Every configuration's validation accuracy (query set after adaptation) over meta-steps
    on one figure: mean over seeds with the range as a band; an x where a run diverged."""
    metric = "val_query_acc_post"
    fig, axes = _figure()
    ax = axes[0, 0]
    handles: list = []
    any_drawn = False
    labels = [label for label, _ in _names(groups)]
    for group, label, color in zip(groups, labels, _colors(len(groups))):
        if not _draw_series(ax, group, metric, color=color, linewidth=1.8):
            continue
        any_drawn = True
        note = f", {len(group.diverged)} diverged" if group.diverged else ""
        handles.append(Line2D([], [], color=color, label=f"{label}: {group.seed_text()}{note}"))
        steps, mean, *_ = _series(group, metric)
        ok = np.isfinite(mean)
        for step, _seed in _divergence_steps(group):
            before = ok & (steps <= step)
            y = mean[before][-1] if before.any() else 0.0
            ax.plot([step], [y], marker="x", markersize=10, color=DIVERGED_COLOR, mew=2)
    if not any_drawn:
        raise NothingToPlot("no finite validation accuracy in the curves")
    handles += _chance(ax, groups)
    if any(g.diverged for g in groups):
        handles.append(
            Line2D([], [], color=DIVERGED_COLOR, marker="x", linestyle="", label="diverged")
        )
    if any(g.n_seeds > 1 for g in groups):
        handles.append(Patch(color="grey", alpha=0.3, label=BAND))
    ax.set_xlabel("meta-step")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(
        "Validation accuracy (query set after adaptation, fixed validation tasks)\n"
        f"{_summary(groups)}" + (f"; experiment {experiment}" if experiment else "")
    )
    _legend(fig, handles)
    return _save(fig, out_dir / _file("validation-accuracy", suffix))


# -- accuracy against cost -----------------------------------------------------------------


def plot_accuracy_vs_time(
    groups: Sequence[RunGroup], out_dir: Path, *, experiment: str = "", suffix: str = ""
) -> Path:
    """Test accuracy against wall time, one point per configuration: the report's accuracy /
    cost trade-off. Error bars span the seeds (one seed: the 95% interval over test tasks)."""
    fig, axes = _figure()
    ax = axes[0, 0]
    handles: list = []
    times: list[float] = []
    left_out: list[str] = []
    labels = [label for label, _ in _names(groups)]
    for group, label, color in zip(groups, labels, _colors(len(groups))):
        pairs = [
            (_num(r.get("wall_time_s")), _num(r.get("test_acc_mean")), _num(r.get("test_acc_ci95")))
            for r in group.runs
            if r.get("status") == "completed"
        ]
        pairs = [p for p in pairs if math.isfinite(p[0]) and math.isfinite(p[1])]
        if not pairs:
            left_out.append(label)
            continue
        t = np.array([p[0] for p in pairs]) / 60
        acc = np.array([p[1] for p in pairs])
        x, y = float(t.mean()), float(acc.mean())
        if len(pairs) > 1:
            yerr = [[y - acc.min()], [acc.max() - y]]
        else:
            ci = pairs[0][2]
            yerr = [[ci], [ci]] if math.isfinite(ci) else None
        xerr = [[x - t.min()], [t.max() - x]] if len(pairs) > 1 else None
        ax.errorbar(x, y, yerr=yerr, xerr=xerr, fmt="o", color=color, capsize=4, markersize=8)
        ax.annotate(label, (x, y), xytext=(6, 6), textcoords="offset points", fontsize="small")
        times += list(t)
        note = f", {len(group.diverged)} diverged (not shown)" if group.diverged else ""
        handles.append(
            Line2D(
                [], [], color=color, marker="o", linestyle="",
                label=f"{label}: {len(pairs)} seed{'s' if len(pairs) > 1 else ''}{note}",
            )
        )  # fmt: skip
    if not handles:
        raise NothingToPlot("no completed run with a test accuracy and a wall time")
    if left_out:
        handles.append(
            Line2D([], [], linestyle="", label=f"no test accuracy: {', '.join(left_out)}")
        )
    _scale_x(ax, times)
    ax.margins(x=0.12, y=0.1)
    ax.set_xlabel("wall time per run (min)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(
        "Test accuracy against wall time (error bars: range over seeds; "
        "one seed: 95% CI over test tasks)\n"
        f"{_summary(groups)}" + (f"; experiment {experiment}" if experiment else "")
    )
    _legend(fig, handles)
    return _save(fig, out_dir / _file("accuracy-vs-time", suffix))


# -- studies: memory scaling, meta-gradient fidelity ---------------------------------------


def plot_scaling(table: pa.Table, out_dir: Path, *, experiment: str = "") -> Path:
    """Peak memory and time of one meta-step against the inner steps, per solver (the
    scaling study): MAML and the penalty method should grow, the others stay flat. Baselines,
    whose step has no inner loop, are horizontal lines. One row of panels per setting."""
    from raybench.studies.scaling import setting_groups, verdicts

    never = datetime.min.replace(tzinfo=timezone.utc)

    def usable(r: dict[str, Any]) -> bool:
        measured = math.isfinite(_num(r.get("peak_memory_mb"))) or math.isfinite(
            _num(r.get("ms_per_step"))
        )
        return measured and bool(r.get("solver")) and math.isfinite(_num(r.get("inner_steps")))

    groups = [(setting, [r for r in rows if usable(r)]) for setting, rows in setting_groups(table)]
    groups = [g for g in groups if g[1]]
    if not groups:
        raise NothingToPlot("no scaling measurement with a memory or time value")
    groups.sort(key=lambda g: max((r.get("created_at") or never) for r in g[1]), reverse=True)
    shown, hidden = groups[:3], len(groups) - 3
    fig, axes = _figure(len(shown), 2)
    solvers = sorted(
        {r["solver"] for _, rows in shown for r in rows},
        key=lambda s: (
            min(
                family_rank(r.get("family")) for _, rows in shown for r in rows if r["solver"] == s
            ),
            s,
        ),
    )
    color = dict(zip(solvers, _colors(len(solvers))))
    handles: dict[str, Line2D] = {}
    for (setting, rows), (mem_ax, time_ax) in zip(shown, axes):
        verdict = {v.solver: v for v in verdicts(rows)}
        for solver in solvers:
            mine = sorted(
                (r for r in rows if r["solver"] == solver), key=lambda r: r["inner_steps"]
            )
            if not mine:
                continue
            flat = not any(r.get("inner_steps_matter", True) for r in mine)
            for ax, column in ((mem_ax, "peak_memory_mb"), (time_ax, "ms_per_step")):
                xs = [int(r["inner_steps"]) for r in mine if math.isfinite(_num(r.get(column)))]
                ys = [_num(r.get(column)) for r in mine if math.isfinite(_num(r.get(column)))]
                if not ys:
                    continue
                if flat:
                    ax.axhline(ys[0], color=color[solver], linestyle="--", linewidth=1.5)
                else:
                    ax.plot(xs, ys, marker="o", color=color[solver])
            v = verdict.get(solver)
            text = solver + (" (no inner loop in its step)" if flat else "")
            if v is not None and v.observed and v.expected:
                mark = "as expected" if v.as_expected else f"expected {v.expected}"
                text += f": memory {v.observed}, {mark}"
            handles.setdefault(
                solver,
                Line2D([], [], color=color[solver], marker=None if flat else "o",
                       linestyle="--" if flat else "-", label=text),
            )  # fmt: skip
        kind = next((r.get("memory_kind") for r in rows if r.get("memory_kind")), None)
        where = _scaling_setting(setting)
        mem_ax.set_title(
            f"peak memory of a meta-step ({kind or 'memory'})"
            + (f"\n{where}" if len(shown) > 1 else ""),
            fontsize="medium",
        )
        time_ax.set_title("time of a meta-step (median)", fontsize="medium")
        mem_ax.set_ylabel("peak memory (MiB)")
        time_ax.set_ylabel("time per meta-step (ms)")
        counts = sorted({int(r["inner_steps"]) for r in rows if r.get("inner_steps") is not None})
        for ax in (mem_ax, time_ax):
            ax.set_xlabel("inner steps")
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
            if 0 < len(counts) <= 10:
                ax.set_xticks(counts)
    fig.suptitle(
        "Memory and time of one meta-step against inner steps (scaling study)"
        + (f"; experiment {experiment}" if experiment else "")
        + (f"\n{_scaling_setting(shown[0][0])}" if len(shown) == 1 else "")
        + (f"; {hidden} older setting(s) not shown" if hidden > 0 else "")
    )
    _legend(fig, list(handles.values()), loc="outside lower center", ncol=3)
    return _save(fig, out_dir / "scaling-memory.png")


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
    return ", ".join(parts)


_FIDELITY_TITLE = (
    ("preset", "preset {}"),
    ("ways", "{}-way"),
    ("shots", "{}-shot"),
    ("tasks", "{} validation tasks"),
    ("inner_steps", "{} inner steps"),
    ("inner_lr", "inner lr {}"),
)
_FIDELITY_SETTING = ("tasks", "inner_steps", "inner_lr", "ways", "shots", "preset", "dtype")


def plot_fidelity(table: pa.Table, out_dir: Path, *, experiment: str = "") -> Path:
    """Cosine similarity and relative error of each solver's meta-gradient against exact
    MAML's, against the solver's knob (CG steps, Neumann terms, penalty weight); solvers
    without a knob as bars. At the initialisation, and averaged over trained checkpoints."""
    never = datetime.min.replace(tzinfo=timezone.utc)
    rows = [r for r in _rows(table) if math.isfinite(_num(r.get("cosine"))) and r.get("solver")]
    if not rows:
        raise NothingToPlot("no fidelity row with a cosine")
    settings: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        settings.setdefault(tuple(r.get(k) for k in _FIDELITY_SETTING), []).append(r)
    newest = max(settings.values(), key=lambda rs: max((r.get("created_at") or never) for r in rs))
    hidden = len(settings) - 1
    rows = newest
    points = {(r.get("point_kind") == "init", r.get("point")) for r in rows}
    point_counts = {
        "initialisation point(s)": sum(init for init, _ in points),
        "trained checkpoint(s)": sum(not init for init, _ in points),
    }
    first = rows[0]

    def rank(solver: str) -> tuple:
        family = next((r.get("family") for r in rows if r["solver"] == solver), None)
        return (family_rank(family), solver)

    knobbed = sorted({r["solver"] for r in rows if r.get("knob")}, key=rank)
    plain = sorted({r["solver"] for r in rows if not r.get("knob")}, key=rank)
    ncols = len(knobbed) + (1 if plain else 0)
    fig, axes = _figure(2, min(ncols, 5))
    kinds = (
        ("init", "#1f77b4", "at the initialisation"),
        ("trained", "#ff7f0e", "at trained checkpoints (mean, range)"),
    )

    def kind_of(r: dict[str, Any]) -> str:
        return "init" if r.get("point_kind") == "init" else "trained"

    used: set[str] = set()
    for col, solver in enumerate(knobbed[: axes.shape[1] - (1 if plain else 0)]):
        mine = [r for r in rows if r["solver"] == solver and r.get("knob")]
        knob = mine[0]["knob"]
        xs_all = [_num(r.get("knob_value")) for r in mine]
        for row_i, column in enumerate(("cosine", "rel_error")):
            ax = axes[row_i, col]
            for kind, color, _ in kinds:
                points: dict[float, list[float]] = {}
                for r in mine:
                    x, y = _num(r.get("knob_value")), _num(r.get(column))
                    if kind_of(r) == kind and math.isfinite(x) and math.isfinite(y):
                        points.setdefault(x, []).append(y)
                if not points:
                    continue
                used.add(kind)
                xs = sorted(points)
                mean = [sum(points[x]) / len(points[x]) for x in xs]
                ax.plot(xs, mean, marker="o", color=color)
                if any(len(points[x]) > 1 for x in xs):
                    ax.fill_between(
                        xs, [min(points[x]) for x in xs], [max(points[x]) for x in xs],
                        color=color, alpha=0.2, linewidth=0,
                    )  # fmt: skip
            _scale_x(ax, xs_all, at_values=True)
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel(f"{solver}: {knob}")
            if column == "rel_error":
                values = [_num(r.get(column)) for r in mine]
                positive = [v for v in values if math.isfinite(v) and v > 0]
                if positive:
                    ax.set_yscale("log")
                    _plain_log_ticks(ax.yaxis, positive)
                ax.set_ylabel("relative error ‖g - g_MAML‖ / ‖g_MAML‖")
            else:
                ax.set_ylabel("cosine similarity to MAML")
                ax.set_ylim(top=1.02)
            if not ax.has_data():
                _empty(ax, "no finite values")
        axes[0, col].set_title(solver)
    if plain:
        _fidelity_bars(axes[:, -1], [r for r in rows if r["solver"] in plain], plain, kinds, used)
    for ax in axes.flat:  # any column left over (more than five knobbed solvers)
        if not ax.has_data() and not ax.texts:
            ax.set_axis_off()
    fig.suptitle(
        "Meta-gradient fidelity against exact MAML"
        + "".join(
            f"{', ' if i else ': '}{text.format(_fmt(first[key]))}"
            for i, (key, text) in enumerate(
                (k, t) for k, t in _FIDELITY_TITLE if first.get(k) is not None
            )
        )
        + "\n"
        + ", ".join(f"{n} {what}" for what, n in point_counts.items() if n)
        + (f"; experiment {experiment}" if experiment else "")
        + (f"; {hidden} other comparison setting(s) not shown" if hidden else "")
    )
    handles: list = [
        Line2D([], [], color=c, marker="o", label=text) for kind, c, text in kinds if kind in used
    ]
    if any(r.get("pseudo_gradient") for r in rows):
        handles.append(
            Line2D([], [], linestyle="", label="† pseudo-gradient: only its cosine is comparable")
        )
    _legend(fig, handles, loc="outside lower center", ncol=3)
    return _save(fig, out_dir / "fidelity.png")


def _fidelity_bars(
    axes: np.ndarray,
    rows: list[dict[str, Any]],
    solvers: list[str],
    kinds: Sequence[tuple[str, str, str]],
    used: set[str],
) -> None:
    """Solvers without a knob: one bar per (solver, point kind), mean over points."""
    width = 0.8 / len(kinds)
    names = [
        s + (" †" if any(r.get("pseudo_gradient") for r in rows if r["solver"] == s) else "")
        for s in solvers
    ]
    for ax, column in zip(axes, ("cosine", "rel_error")):
        for k, (kind, color, _) in enumerate(kinds):
            xs, ys = [], []
            for i, solver in enumerate(solvers):
                values = [
                    _num(r.get(column))
                    for r in rows
                    if r["solver"] == solver
                    and (r.get("point_kind") == "init") == (kind == "init")
                    and not (column == "rel_error" and r.get("pseudo_gradient"))
                ]
                values = [v for v in values if math.isfinite(v)]
                if values:
                    xs.append(i + (k - (len(kinds) - 1) / 2) * width)
                    ys.append(sum(values) / len(values))
            if xs:
                used.add(kind)
                ax.bar(xs, ys, width=width, color=color)
        ax.set_xticks(range(len(solvers)), names)
        ax.set_xlim(-0.6, len(solvers) - 0.4)
        ax.grid(alpha=0.3, axis="y")
        ax.set_xlabel("solvers without a knob")
        if column == "cosine":
            ax.set_ylabel("cosine similarity to MAML")
            ax.set_title("no knob")
        else:
            ax.set_ylabel("relative error")
        if not ax.has_data():
            _empty(ax, "no finite values")


# -- hyperparameter sweeps -----------------------------------------------------------------


def _trial_params(row: dict[str, Any]) -> dict[str, Any]:
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


def plot_sweep(
    table: pa.Table,
    solver: str,
    out_dir: Path,
    *,
    experiment: str = "",
    runs: pa.Table | None = None,
) -> Path:
    """One solver's sweep: each trial's validation accuracy over meta-steps (what ASHA saw),
    and its final validation accuracy against each sampled parameter, coloured by status,
    the best completed trial starred."""
    trials = [r for r in _rows(table) if r.get("solver") == solver]
    if not trials:
        raise NothingToPlot(f"no trials of {solver}")
    params = [_trial_params(t) for t in trials]
    keys = sorted({k for p in params for k in p})
    histories = []
    for t in trials:
        try:
            history = json.loads(t.get("history_json") or "[]")
        except ValueError:
            history = []
        pts = [
            (_num(h.get("step")), _num(h.get("val_acc"))) for h in history if isinstance(h, dict)
        ]
        histories.append([(s, a) for s, a in pts if math.isfinite(s) and math.isfinite(a)])
    has_history = any(histories)
    panels = (["history"] if has_history else []) + keys[: 7 if has_history else 8]
    if not panels:
        raise NothingToPlot(f"the trials of {solver} have neither parameters nor histories")
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _figure(nrows, ncols)
    scores = [_num(t.get("val_acc")) for t in trials]
    done = [
        i
        for i, t in enumerate(trials)
        if t.get("status") == "completed" and math.isfinite(scores[i])
    ]
    best = max(done, key=lambda i: scores[i]) if done else None
    statuses = [str(t.get("status") or "?") for t in trials]
    for ax, panel in zip(axes.flat, panels):
        if panel == "history":
            for i, pts in enumerate(histories):
                if pts:
                    color = STATUS_COLORS.get(statuses[i], "#9467bd")
                    ax.plot(
                        [s for s, _ in pts], [a for _, a in pts], color=color,
                        alpha=1.0 if i == best else 0.5, linewidth=2.5 if i == best else 1,
                    )  # fmt: skip
            ax.set_xlabel("meta-step")
            ax.set_title("each trial over meta-steps", fontsize="medium")
        else:
            values = [p.get(panel) for p in params]
            categorical = any(isinstance(v, str) for v in values)
            if categorical:
                cats = sorted({str(v) for v in values if v is not None})
                xs = [cats.index(str(v)) if v is not None else math.nan for v in values]
                ax.set_xticks(range(len(cats)), cats)
            else:
                xs = [_num(v) for v in values]
                _scale_x(ax, xs)
            for i, (x, y) in enumerate(zip(xs, scores)):
                if math.isfinite(x) and math.isfinite(y):
                    ax.scatter(
                        [x], [y], color=STATUS_COLORS.get(statuses[i], "#9467bd"),
                        marker="*" if i == best else "o", s=220 if i == best else 30,
                        edgecolors="black" if i == best else "none", zorder=3 if i == best else 2,
                    )  # fmt: skip
            ax.set_xlabel(panel)
            ax.set_title(f"score against {panel}", fontsize="medium")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        if not ax.has_data():
            _empty(ax, "no finite scores")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(sorted(statuses)))
    unscored = sum(not math.isfinite(s) for s in scores)
    setting = ""
    mine = [g for g in run_groups(runs) if g.solver == solver] if runs is not None else []
    if mine:
        setting = f"; final runs: {mine[0].setting()}, {mine[0].seed_text()}"
    best_text = ""
    if best is not None:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(params[best].items()))
        best_text = f"\nbest: {scores[best]:.1f}% with {shown}"
    fig.suptitle(
        f"Sweep of {solver}: {len(trials)} trials ({counts})"
        + (f", {unscored} without a score" if unscored else "")
        + setting
        + (f"; experiment {experiment}" if experiment else "")
        + best_text,
        fontsize="medium",
    )
    handles: list = [
        Line2D([], [], color=STATUS_COLORS.get(s, "#9467bd"), marker="o", linestyle="", label=s)
        for s in dict.fromkeys(sorted(statuses))
    ]
    if best is not None:
        handles.append(
            Line2D([], [], color=STATUS_COLORS["completed"], marker="*", markersize=14,
                   markeredgecolor="black", linestyle="", label="best completed trial")
        )  # fmt: skip
    _legend(fig, handles, loc="outside lower center", ncol=len(handles))
    return _save(fig, out_dir / f"sweep-{_slug(solver)}.png")


# -- everything an experiment has ----------------------------------------------------------


def plot_experiment(
    store: ExperimentStore,
    out_dir: Path,
    *,
    on_skip: Callable[[str], None] | None = None,
) -> list[Path]:
    """Every figure whose data the experiment has; ``on_skip`` hears why each other one is
    left out (no runs, no curves, no study tables...)."""
    skip = on_skip or (lambda _reason: None)
    out_dir = Path(out_dir)
    name = store.name
    written: list[Path] = []

    def attempt(what: str, draw: Callable[[], Path]) -> None:
        try:
            written.append(draw())
        except NothingToPlot as exc:
            skip(f"{what}: {exc}")

    runs = store.read("runs")
    groups = run_groups(runs, store.read("curves"))
    if groups:
        for group in groups:
            attempt(
                f"curves of {group.label}", lambda g=group: plot_curves(g, out_dir, experiment=name)
            )
        # Several presets (``raybench run --matrix``): one comparison figure per preset.
        presets = list(dict.fromkeys(str(g.config.get("preset")) for g in groups))
        for preset in presets:
            mine = [g for g in groups if str(g.config.get("preset")) == preset]
            suffix = preset if len(presets) > 1 else ""
            where = f" ({preset})" if suffix else ""
            attempt(
                f"validation accuracy{where}",
                lambda m=mine, x=suffix: plot_validation_accuracy(
                    m, out_dir, experiment=name, suffix=x
                ),
            )
            attempt(
                f"accuracy vs time{where}",
                lambda m=mine, x=suffix: plot_accuracy_vs_time(
                    m, out_dir, experiment=name, suffix=x
                ),
            )
    else:
        skip("curves, validation accuracy, accuracy vs time: no completed or diverged runs")
    scaling = store.read("scaling")
    if scaling.num_rows:
        attempt("scaling", lambda: plot_scaling(scaling, out_dir, experiment=name))
    else:
        skip("scaling: no scaling table (raybench scaling)")
    fidelity = store.read("fidelity")
    if fidelity.num_rows:
        attempt("fidelity", lambda: plot_fidelity(fidelity, out_dir, experiment=name))
    else:
        skip("fidelity: no fidelity table (raybench fidelity)")
    trials = store.read("trials")
    solvers = (
        sorted({str(s) for s in trials.column("solver").to_pylist() if s})
        if (trials.num_rows and "solver" in trials.column_names)
        else []
    )
    for solver in solvers:
        attempt(
            f"sweep of {solver}",
            lambda s=solver: plot_sweep(trials, s, out_dir, experiment=name, runs=runs),
        )
    if not solvers:
        skip("sweeps: no trials table (raybench sweep)")
    return written
