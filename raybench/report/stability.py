"""Stability of training, computed from the stored runs and curves alone.

Every measure is a pure function over plain values (or pyarrow tables), so the report, the
stored ``summary.parquet`` and the tests all use the same definitions:

- **roughness** of a run: the validation accuracy after adaptation (``val_query_acc_post``)
  at each evaluation, in step order, non-finite points dropped, smoothed by a centred moving
  average of width 3 ("valid" mode: ``s_i = (a_{i-1} + a_i + a_{i+1}) / 3``, ``n - 2``
  smoothed points); roughness is the mean absolute difference of consecutive smoothed values,
  ``mean_i |s_{i+1} - s_i|``, in the curve's units. It needs 4 finite evaluations (fewer:
  ``None``). A steadily rising curve scores its mean rise per evaluation; a curve that jumps
  up and down scores more than its net change.
- **steps to X%** of a run: the first evaluation step whose validation accuracy is at least
  ``X/100`` times the run's final validation accuracy (its last finite evaluation). Raw
  values, not smoothed; ``None`` without a finite evaluation or with a final accuracy of 0.
- across seeds: mean, sample standard deviation (``n - 1``) and a Student-t 95% interval
  ``t(0.975, n - 1) * std / sqrt(n)``.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

VAL_METRIC = "val_query_acc_post"
SMOOTH_WIDTH = 3
FRACTIONS = (0.9, 0.95)

Point = tuple[int, float]

# t(0.975, df) for df = 1..30; beyond, a Cornish-Fisher expansion (error < 1e-4).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959964


def finite(value: Any) -> float | None:
    """A number as float, or ``None`` for nulls, NaN and infinities (diverged runs)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def clean_curve(points: Iterable[tuple[Any, Any]]) -> list[Point]:
    """``(step, accuracy)`` pairs sorted by step, with non-finite accuracies dropped: a
    diverged run's last evaluation is stored as NaN and must not count."""
    out = [(int(s), a) for s, v in points if s is not None and (a := finite(v)) is not None]
    return sorted(out)


def moving_average(values: Sequence[float], width: int = SMOOTH_WIDTH) -> list[float]:
    """Centred moving average in "valid" mode: ``len(values) - width + 1`` points (none if
    the curve is shorter than the window), so no edge value is an average of fewer points."""
    if width < 1:
        raise ValueError("width must be >= 1")
    return [sum(values[i : i + width]) / width for i in range(len(values) - width + 1)]


def roughness(values: Sequence[float], width: int = SMOOTH_WIDTH) -> float | None:
    """Mean absolute step-to-step change of the smoothed curve (see the module docstring):
    how much the validation accuracy moves between evaluations once single-evaluation noise
    is averaged out. ``None`` with fewer than ``width + 1`` values (no two smoothed points)."""
    smooth = moving_average(values, width)
    if len(smooth) < 2:
        return None
    return statistics.fmean(abs(b - a) for a, b in itertools.pairwise(smooth))


def steps_to_fraction(curve: Sequence[Point], fraction: float) -> int | None:
    """The first evaluation step whose accuracy reaches ``fraction`` of the final one: how
    fast a solver gets most of what it will get."""
    if not curve:
        return None
    final = curve[-1][1]
    if final <= 0:
        return None
    target = fraction * final
    return next(step for step, acc in curve if acc >= target - 1e-12)


@dataclass(frozen=True)
class RunStability:
    """The stability measures of one run's validation curve."""

    evaluations: int
    final_val_acc: float | None
    roughness: float | None
    steps_90: int | None
    steps_95: int | None


def run_stability(points: Iterable[tuple[Any, Any]]) -> RunStability:
    """Roughness and steps to 90% / 95% of the final validation accuracy of one run."""
    curve = clean_curve(points)
    return RunStability(
        evaluations=len(curve),
        final_val_acc=curve[-1][1] if curve else None,
        roughness=roughness([acc for _, acc in curve]),
        steps_90=steps_to_fraction(curve, FRACTIONS[0]),
        steps_95=steps_to_fraction(curve, FRACTIONS[1]),
    )


def curves_by_run(curves: pa.Table, metric: str = VAL_METRIC) -> dict[str, list[Point]]:
    """Each run's ``(step, accuracy)`` points from the ``curves`` table; an old store
    without the metric (or without curves) gives no points, not an error."""
    names = set(curves.column_names)
    if not {"run_id", "step", metric} <= names:
        return {}
    out: dict[str, list[tuple[Any, Any]]] = {}
    for run_id, step, value in zip(
        curves.column("run_id").to_pylist(),
        curves.column("step").to_pylist(),
        curves.column(metric).to_pylist(),
    ):
        if run_id is not None:
            out.setdefault(run_id, []).append((step, value))
    return {run_id: clean_curve(points) for run_id, points in out.items()}


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (two-sided 95%)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def mean_or_none(values: Iterable[Any]) -> float | None:
    """Mean of the finite values; ``None`` if there are none."""
    xs = [x for v in values if (x := finite(v)) is not None]
    return statistics.fmean(xs) if xs else None


def std_or_none(values: Iterable[Any]) -> float | None:
    """Sample standard deviation (``n - 1``) of the finite values; ``None`` below two."""
    xs = [x for v in values if (x := finite(v)) is not None]
    return statistics.stdev(xs) if len(xs) > 1 else None


def seed_interval(values: Sequence[float]) -> float | None:
    """Half-width of the Student-t 95% interval of the mean over seeds; ``None`` below two
    seeds (one seed says nothing about the spread across seeds)."""
    std = std_or_none(values)
    if std is None:
        return None
    n = len([v for v in values if finite(v) is not None])
    return t975(n - 1) * std / math.sqrt(n)
