"""Paired comparisons from the store: per-task results of runs, lined up by test task.

The ``tasks`` table holds every tested run's accuracy on each fixed test task together with
the task's key (what it is made of). Runs are compared only where their keys agree task by
task, so a pairing is checked, never assumed. :mod:`raybench.report.significance` does the
statistics; this module turns stored rows into its seeds x tasks matrices and compares
each configuration of a setting with the best one (Holm-adjusted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from raybench.report.significance import ALPHA, Comparison, compare, holm

METRIC = "query_acc_post"  # accuracy (%) on the query set after adaptation


@dataclass(frozen=True)
class TaskResults:
    """One run's accuracies on the fixed test tasks, in task order."""

    keys: tuple[str, ...]
    accuracy: np.ndarray


@dataclass(frozen=True)
class VersusBest:
    """A configuration against the best of its setting (``diff`` = this minus best)."""

    diff: float | None
    half_width: float | None
    p_adjusted: float | None
    verdict: str  # best | tied (not significantly worse) | worse
    comparison: Comparison | None = None


def task_results(tasks: pa.Table | None) -> dict[str, TaskResults]:
    """Each run's per-task results from the ``tasks`` table (none for an older store)."""
    if tasks is None or not {"run_id", "task", METRIC} <= set(tasks.column_names):
        return {}
    has_keys = "task_key" in tasks.column_names
    rows: dict[str, list[tuple[int, str, float]]] = {}
    run_ids = tasks.column("run_id").to_pylist()
    indices = tasks.column("task").to_pylist()
    keys = tasks.column("task_key").to_pylist() if has_keys else [None] * len(run_ids)
    values = tasks.column(METRIC).to_pylist()
    for run_id, task, key, value in zip(run_ids, indices, keys, values):
        if run_id is not None and task is not None:
            rows.setdefault(run_id, []).append((task, str(key or task), value))
    out = {}
    for run_id, items in rows.items():
        items.sort()
        if [t for t, _, _ in items] != list(range(len(items))):
            continue  # not the whole fixed set, in order: nothing to pair with
        accuracy = np.array([np.nan if v is None else v for _, _, v in items], float)
        if np.isfinite(accuracy).all():
            out[run_id] = TaskResults(tuple(k for _, k, _ in items), accuracy)
    return out


def seeds_by_tasks(
    run_ids: Sequence[str], results: Mapping[str, TaskResults]
) -> tuple[tuple[str, ...], np.ndarray] | None:
    """The runs' per-task accuracies as a seeds x tasks matrix, with the task keys; None
    unless every run has per-task results on the same tasks."""
    found = [results[r] for r in run_ids if r in results]
    if not found or len(found) != len(run_ids):
        return None
    keys = found[0].keys
    if any(f.keys != keys for f in found):
        return None
    return keys, np.stack([f.accuracy for f in found])


def versus_best(
    matrices: Mapping[object, tuple[tuple[str, ...], np.ndarray] | None],
    means: Mapping[object, float | None],
) -> dict[object, VersusBest]:
    """Every configuration of one setting (``matrices``: its seeds x tasks accuracies)
    against the one with the highest mean accuracy: the paired difference, its interval,
    and the p-value adjusted over the setting's comparisons by Holm's method. A
    configuration without per-task results, or tested on other tasks, is left out."""
    usable = {k: m for k, m in matrices.items() if m is not None and means.get(k) is not None}
    if len(usable) < 2:
        return {}
    best = max(usable, key=lambda k: means[k])  # type: ignore[arg-type, return-value]
    best_keys, best_matrix = usable[best]
    others = [k for k in usable if k != best and usable[k][0] == best_keys]
    comparisons = {k: compare(usable[k][1], best_matrix) for k in others}
    adjusted = holm([comparisons[k].p_value for k in others])
    out = {best: VersusBest(0.0, 0.0, None, "best")}
    for k, p in zip(others, adjusted):
        c = comparisons[k]
        verdict = "worse" if p < ALPHA and c.diff < 0 else "tied"
        out[k] = VersusBest(c.diff, c.half_width, p, verdict, c)
    return out
