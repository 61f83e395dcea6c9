"""What every figure shares: size, output format, one colour and marker per solver, and the
axis rules (integer step ticks, accuracy axes fitted to the data, one scale rule for
parameters, zeros on log axes shown, time from zero).

Figures are plain ``matplotlib.figure.Figure`` objects with an Agg canvas (never pyplot's
global state), so plotting works headless, in threads and in long-lived processes alike.
"""

from __future__ import annotations

import hashlib
import io
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from raybench.atomic import atomic_write_bytes
from raybench.errors import ParameterError, RaybenchError

if "matplotlib.pyplot" not in sys.modules:  # never switch an interactive session's backend
    matplotlib.use("Agg")

FIGSIZE = (12.0, 6.0)  # inches
DPI = 100
PIXELS = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))  # (width, height) at DPI
FORMATS = ("png", "pdf", "svg")


class NothingToPlot(ValueError):
    """The experiment lacks the data of a figure; the message says what is missing."""


@dataclass(frozen=True)
class Output:
    """How figures are written: file format and resolution (pixels = inches x dpi; for PDF
    and SVG the dpi only applies to rasterised parts)."""

    fmt: str = "png"
    dpi: int = DPI

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise RaybenchError(f"unknown figure format {self.fmt!r}: use {', '.join(FORMATS)}")
        if not 10 <= self.dpi <= 1200:
            raise ParameterError("{dpi} {given}: expected 10 to 1200", given=self.dpi)

    @property
    def pixels(self) -> tuple[int, int]:
        return round(FIGSIZE[0] * self.dpi), round(FIGSIZE[1] * self.dpi)


# -- one colour and one marker per solver, in every figure of every experiment -------------

# Okabe-Ito's colour-blind-safe palette, then neutral tones for the baselines. Red is left
# for divergence marks and sweep statuses, light grey for chance lines.
SOLVER_COLORS = {
    "maml": "#0072B2",  # blue
    "fomaml": "#56B4E9",  # sky blue: MAML's first-order cousin
    "reptile": "#009E73",  # bluish green
    "imaml": "#E69F00",  # orange
    "neumann": "#D55E00",  # vermillion
    "penalty": "#CC79A7",  # reddish purple
    "finetune-head": "#8C6D31",  # ochre
    "finetune-full": "#404040",  # dark grey
}
SOLVER_MARKERS = {
    "maml": "o",
    "fomaml": "s",
    "reptile": "^",
    "imaml": "D",
    "neumann": "v",
    "penalty": "P",
    "finetune-head": "X",
    "finetune-full": "h",
}
_SPARE_COLORS = ("#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499", "#6699CC")
_SPARE_MARKERS = ("<", ">", "p", "d", "8", "*")
# Configurations of one solver share its colour and differ by line style.
CONFIG_LINESTYLES = ("-", "--", "-.", ":")
DIVERGED_COLOR = "#C00000"
CHANCE_COLOR = "#A0A0A0"
STATUS_COLORS = {
    "completed": "#2ca02c",
    "stopped": "#7f7f7f",
    "diverged": "#d62728",
    "errored": "#000000",
}
# More than this many series in one panel: no bands (or small multiples instead).
MAX_BANDS = 4


def _stable_index(name: str, n: int) -> int:
    """The same index for the same name in every process (``hash`` is salted)."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % n


def solver_color(solver: str) -> str:
    """The solver's colour; a solver not in the table gets a spare one, chosen from its name
    so that it too keeps its colour across figures and runs."""
    return SOLVER_COLORS.get(solver) or _SPARE_COLORS[_stable_index(solver, len(_SPARE_COLORS))]


def solver_marker(solver: str) -> str:
    return SOLVER_MARKERS.get(solver) or _SPARE_MARKERS[_stable_index(solver, len(_SPARE_MARKERS))]


# -- figures and files ------------------------------------------------------------------


def blank_figure() -> Figure:
    """A figure of the fixed size with an Agg canvas (text extents can be measured before
    saving) and constrained layout."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, np.ndarray]:
    """:func:`blank_figure` with a grid of axes, always as a 2-D array."""
    fig = blank_figure()
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save(fig: Figure, out_dir: Path, stem: str, output: Output | None = None) -> Path:
    """Write ``<stem>.<fmt>`` whole or not at all (rendered in memory, then the store's one
    atomic write: a hidden temporary file, synced, renamed)."""
    output = output or Output()
    path = Path(out_dir) / f"{stem}.{output.fmt}"
    if Path(stem).name != stem or stem.startswith(".") or not stem:  # never a path
        raise RaybenchError(f"refusing a figure name that is not a plain file name: {stem!r}")
    if path.parent.exists() and not path.parent.is_dir():
        raise RaybenchError(f"cannot write figures into {path.parent}: it is a file, not a folder")
    metadata = {"Creator": "raybench"} if output.fmt in ("pdf", "svg") else {"Software": "raybench"}
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=output.dpi, format=output.fmt, metadata=metadata)
    atomic_write_bytes(path, buffer.getbuffer())
    return path


def legend(fig: Figure, handles: list, **kw: Any) -> None:
    """A figure legend outside the axes, only when there is something to explain."""
    handles = [h for h in handles if h.get_label() and not h.get_label().startswith("_")]
    if handles:
        kw.setdefault("loc", "outside right upper")
        fig.legend(handles=handles, fontsize="small", **kw)


def empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


# -- axis rules ---------------------------------------------------------------------------


def integer_ticks(axis: Any, nbins: int | str = "auto") -> None:
    """Ticks at round whole numbers only (meta-steps, inner steps, counts): never 2.25
    steps; ``nbins`` caps their number on narrow panels."""
    axis.set_major_locator(MaxNLocator(nbins=nbins, integer=True, steps=[1, 2, 5, 10]))
    axis.set_minor_formatter(NullFormatter())


def fit_percent_axis(axes: Sequence[Axes], name: str, *, pad: float = 0.06) -> tuple[float, float]:
    """Fit a percentage y axis (shared by ``axes``) to what is drawn on them (call before
    drawing reference lines such as chance), at round numbers within 0-100 (a little room
    above 100 so that a curve at 100% is not hidden by the frame). When the axis does not
    start at zero its label says so; panels on several rows get one label for the figure."""
    lows, highs = [], []
    for ax in axes:
        lo, hi = ax.dataLim.intervaly
        if math.isfinite(lo) and math.isfinite(hi) and ax.has_data():
            lows.append(lo)
            highs.append(hi)
    if not lows:
        bottom, top = 0.0, 100.0
    else:
        lo, hi = min(lows), max(highs)
        span = max(hi - lo, 4.0)
        step = 1.0 if span <= 10 else 2.0 if span <= 20 else 5.0 if span <= 60 else 10.0
        bottom = max(0.0, math.floor((lo - pad * span) / step) * step)
        top = min(100.0, math.ceil((hi + pad * span) / step) * step)
        if bottom <= 0.15 * top:  # close to zero anyway: show zero
            bottom = 0.0
        if top - bottom < 4.0:
            top = min(100.0, bottom + 4.0)
            bottom = max(0.0, top - 4.0)
    limit = top + 0.025 * (top - bottom) if top >= 100 else top
    for ax in axes:
        ax.set_ylim(bottom, limit)
    label = name if bottom == 0 else f"{name}; axis starts at {bottom:g}%, not 0"
    specs = [ax.get_subplotspec() for ax in axes]
    rows = {spec.rowspan.start for spec in specs if spec is not None}
    if len(rows) > 1:
        axes[0].figure.supylabel(label, fontsize="medium")
    else:
        for ax, spec in zip(axes, specs):
            if spec is None or spec.is_first_col():
                ax.set_ylabel(label)
    return bottom, limit


def chance_lines(axes: Sequence[Axes], ways: Iterable[Any]) -> list[Line2D]:
    """Dotted chance level (100 / ways %) on each axis where it is inside the y range; a
    legend entry either way, saying when it lies off the axis."""
    handles = []
    for w in sorted({int(w) for w in ways if w is not None}):
        level = 100 / w
        inside = False
        for ax in axes:
            bottom, top = ax.get_ylim()
            if bottom <= level <= top:
                ax.axhline(level, color=CHANCE_COLOR, linestyle=":", linewidth=1.2)
                inside = True
        where = "" if inside else ", below the axis"
        handles.append(
            Line2D([], [], color=CHANCE_COLOR, linestyle=":", label=f"chance {level:.3g}% "
                   f"({w}-way{where})")
        )  # fmt: skip
    return handles


def time_axis(ax: Axes, seconds: Sequence[float], what: str = "wall time") -> float:
    """Set an x axis of durations from zero, in seconds, minutes or hours (whichever keeps
    the numbers readable), with round ticks; returns the divisor to apply to seconds."""
    top = max(finite(seconds), default=0.0)
    unit, div = ("s", 1.0) if top < 120 else ("min", 60.0) if top < 3 * 3600 else ("h", 3600.0)
    ax.set_xlim(0, max(top / div * 1.08, 1e-9))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel(f"{what} ({unit})")
    return div


def is_count(key: str, solver: str | None = None, values: Sequence[float] = ()) -> bool:
    """Whether a setting or solver option is a count (inner steps, CG steps, terms) rather
    than a real-valued scale (a learning rate, a weight): from its declared type, else from
    its values."""
    from raybench.config import RUN_BOUNDS
    from raybench.solver_catalog import option_bounds

    solver_part, _, knob = key.rpartition(".")
    bounds = option_bounds()
    for owner in (solver_part, solver):
        if owner and owner in bounds and knob in bounds[owner]:
            return bounds[owner][knob].kind is int
    if key in RUN_BOUNDS:
        return RUN_BOUNDS[key].kind is int
    vals = finite(values)
    return bool(vals) and all(v == int(v) for v in vals)


def param_axis(
    ax: Axes, key: str, values: Sequence[float], *, solver: str | None = None, label: str = ""
) -> None:
    """The one scale rule for a parameter axis, in every figure: counts on a linear axis
    with whole-number ticks; real-valued parameters (learning rates, weights) on a log axis,
    symmetric-log when zero is among the values (said in the label), so that zero is shown
    rather than dropped. Ticks at the values themselves when they are few."""
    vals = finite(values)
    distinct = sorted(set(vals))
    text = label or key
    positive = [v for v in distinct if v > 0]
    scale = "linear"
    if is_count(key, solver, vals):
        integer_ticks(ax.xaxis)
    elif positive and distinct[0] >= 0:
        if distinct[0] == 0:
            scale = "symlog"
            ax.set_xscale("symlog", linthresh=positive[0], linscale=0.5)
            text += f" (log axis, linear below {positive[0]:g} to show 0)"
        else:
            scale = "log"
            ax.set_xscale("log")
            text += " (log axis)"
        plain_log_ticks(ax.xaxis, positive)
    if 0 < len(distinct) <= 8:
        ax.set_xticks(distinct, [f"{v:g}" for v in distinct])
        ax.xaxis.set_minor_formatter(NullFormatter())
    if distinct:  # a margin, so that no point sits on the frame
        lo, hi = distinct[0], distinct[-1]
        if scale == "linear":
            pad = 0.07 * (hi - lo) or 0.5
            ax.set_xlim(lo - pad, hi + pad)
        else:
            ratio = (positive[-1] / positive[0]) ** 0.08 if positive[-1] > positive[0] else 1.5
            ax.set_xlim(-0.4 * positive[0] if scale == "symlog" else lo / ratio, hi * ratio)
    ax.set_xlabel(text)


def plain_log_ticks(axis: Any, positive: Sequence[float]) -> None:
    """Log-axis ticks as plain numbers, at 1-2-5 when the values span few decades."""
    if positive and max(positive) / min(positive) < 1000:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


ZERO_MARKER = "v"


def log_y_with_zeros(
    ax: Axes, xs: Sequence[float], ys: Sequence[float], *, color: Any
) -> list[float]:
    """On a log y axis a zero has no place, so it is drawn as a marker at the bottom edge
    (``ZERO_MARKER``, hollow) instead of vanishing; returns the x values of the zeros."""
    zeros = [x for x, y in zip(xs, ys) if math.isfinite(x) and y == 0]
    if zeros:
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot(
            zeros, [0.04] * len(zeros), linestyle="", marker=ZERO_MARKER, markersize=9,
            markerfacecolor="none", markeredgecolor=color, markeredgewidth=1.8,
            transform=trans, clip_on=False, zorder=4, label="_zero",
        )  # fmt: skip
    return zeros


def zero_handle() -> Line2D:
    return Line2D(
        [], [], linestyle="", marker=ZERO_MARKER, markerfacecolor="none", markeredgecolor="black",
        label="exactly 0 (below the log axis, drawn at its bottom edge)",
    )  # fmt: skip


def same_series(
    a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]], tol: float
) -> bool:
    """Whether two series coincide (same x values, y within ``tol``): one would hide the
    other."""
    da, db = dict(a), dict(b)
    return bool(da) and da.keys() == db.keys() and all(abs(da[x] - db[x]) <= tol for x in da)
