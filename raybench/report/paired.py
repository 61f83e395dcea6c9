"""Paired comparisons from the store: per-task results of runs, lined up by test task and
by seed.

The ``tasks`` table holds every tested run's accuracy on each fixed test task together with
the task's key (what it is made of). Runs are compared only where their keys agree task by
task, and seed by seed only where both configurations ran the same seeds and each seed's
runs recorded the same initial network (:mod:`raybench.pairing`): a pairing is checked,
never assumed. :mod:`raybench.report.significance` does the statistics; this module turns
stored rows into its seeds x tasks matrices, chooses the method (and says why), and
compares each configuration of a setting with the best one (Holm-adjusted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from raybench.report.power import detectable
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

    @property
    def method(self) -> str | None:
        return None if self.comparison is None else method_label(self.comparison)

    @property
    def detectable(self) -> float | None:
        """The difference this comparison would detect with 80% power at 5%."""
        return None if self.comparison is None else detectable(self.comparison)


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


@dataclass(frozen=True)
class Runs:
    """One configuration's tested runs in seed order: their seeds x tasks accuracies, the
    task keys, and what each seed's run recorded about its start and draws."""

    keys: tuple[str, ...]
    matrix: np.ndarray
    seeds: tuple[Any, ...]
    init: tuple[str | None, ...]
    stream: tuple[str | None, ...]


def lined_up(views: Sequence[Mapping[str, Any]], results: Mapping[str, TaskResults]) -> Runs | None:
    """The runs (``views``: completed and tested) in seed order; None unless every run has
    per-task results on the same tasks."""
    found = [(v, results.get(str(v["run_id"]))) for v in views]
    if not found or any(r is None for _, r in found):
        return None
    keys = found[0][1].keys  # type: ignore[union-attr]
    if any(r.keys != keys for _, r in found):  # type: ignore[union-attr]
        return None
    found.sort(key=lambda vr: (vr[0].get("seed") is None, vr[0].get("seed") or 0))
    return Runs(
        keys=keys,
        matrix=np.stack([r.accuracy for _, r in found]),  # type: ignore[union-attr]
        seeds=tuple(v.get("seed") for v, _ in found),
        init=tuple(v.get("init_fingerprint") for v, _ in found),
        stream=tuple(v.get("stream_fingerprint") for v, _ in found),
    )


def _seed_list(seeds: Sequence[Any]) -> str:
    return ", ".join(str(s) for s in seeds) or "none"


def pairing(a: Runs, b: Runs) -> tuple[bool, str]:
    """Whether A and B may be compared seed by seed, and why (or why not): the same
    seeds, each once, two or more, each seed's runs started from the same network."""
    if a.seeds != b.seeds:
        return False, f"not the same seeds ({_seed_list(a.seeds)} against {_seed_list(b.seeds)})"
    if len(a.seeds) < 2:
        return False, "one seed each"
    if None in a.seeds or len(set(a.seeds)) != len(a.seeds):
        return False, f"seeds missing or repeated ({_seed_list(a.seeds)})"
    if None in a.init or None in b.init:
        return False, "no pairing record (runs stored before raybench recorded what seeds share)"
    for seed, x, y in zip(a.seeds, a.init, b.init):
        if x != y:
            return False, f"seed {seed} started from different networks"
    same = "initial networks, training draws and test tasks"
    if a.stream != b.stream:
        same = "initial networks and test tasks (not the training draws)"
    return True, f"seeds {_seed_list(a.seeds)} shared: same {same}"


def compare_runs(a: Runs, b: Runs) -> Comparison:
    """A against B, seed-paired where :func:`pairing` allows, else as independent seeds."""
    paired, why = pairing(a, b)
    return compare(a.matrix, b.matrix, paired=paired, why=why)


def method_label(comparison: Comparison) -> str:
    """A short name of the comparison's method, for a table's column or footnote."""
    if comparison.paired:
        return "seed-paired"
    return "tasks only" if comparison.seeds_a == comparison.seeds_b == 1 else "independent seeds"


def versus_best(
    matrices: Mapping[object, Runs | None], means: Mapping[object, float | None]
) -> dict[object, VersusBest]:
    """Every configuration of one setting (``matrices``: its runs lined up) against the
    one with the highest mean accuracy: the difference, its interval (seed-paired where
    the seeds are shared), and the p-value adjusted over the setting's comparisons by
    Holm's method. A configuration without per-task results, or tested on other tasks, is
    left out."""
    usable = {k: m for k, m in matrices.items() if m is not None and means.get(k) is not None}
    if len(usable) < 2:
        return {}
    best = max(usable, key=lambda k: means[k])  # type: ignore[arg-type, return-value]
    others = [k for k in usable if k != best and usable[k].keys == usable[best].keys]
    comparisons = {k: compare_runs(usable[k], usable[best]) for k in others}
    adjusted = holm([comparisons[k].p_value for k in others])
    out = {best: VersusBest(0.0, 0.0, None, "best")}
    for k, p in zip(others, adjusted):
        c = comparisons[k]
        verdict = "worse" if p < ALPHA and c.diff < 0 else "tied"
        out[k] = VersusBest(c.diff, c.half_width, p, verdict, c)
    return out
