"""The report's columns by name (``--columns``): each name stands for a group of record
columns. The summary's are declared in :mod:`raybench.report.summary_columns`; the per-run
table's here. The terminal, compact Markdown and LaTeX tables show one column per group;
the flat formats write the group's record columns. Solver, setting and test accuracy
(with its interval) are always shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from raybench.config import did_you_mean
from raybench.errors import ParameterError, RaybenchError
from raybench.report.summary_columns import GROUPS

SUMMARY_GROUPS = GROUPS  # raybench.report.summary_columns: each column's fields
RUN_GROUPS: dict[str, tuple[str, ...]] = {
    "setting": ("setting",),
    "solver": (
        "solver",
        "family",
        "options",
        "source",
        "config",
        "run_id",
        "seed",
        "assumptions",
    ),
    "test_acc": ("test_acc", "test_ci95"),
    "status": ("status", "steps_done", "meta_steps", "error"),
    "family": ("family",),
    "options": ("options",),
    "val_acc": ("val_acc",),
    "roughness": ("roughness",),
    "steps": ("steps_90", "steps_95", "evaluations"),
    "wall_time_s": ("wall_time_s",),
    "ms_per_step": ("ms_per_step",),
    "peak_memory_mb": ("peak_memory_mb",),
}
ALWAYS = ("setting", "solver", "test_acc")
COLUMN_ALIASES = {
    "acc": "test_acc",
    "accuracy": "test_acc",
    "delta": "vs_best",
    "best": "vs_best",
    "significance": "vs_best",
    "ms": "ms_per_step",
    "mem": "peak_memory_mb",
    "memory": "peak_memory_mb",
    "val": "val_acc",
    "std": "test_std",
    "wall": "wall_time_s",
    "time": "wall_time_s",
    "rough": "roughness",
    "ref": "reference",
    "references": "reference",
    "error": "errors",
    "gain": "tuning_gain",
    "tuning": "tuning_gain",
}


def parse_columns(
    spec: str | Sequence[str] | None, groups: Mapping[str, Sequence[str]] = SUMMARY_GROUPS
) -> list[str] | None:
    """``--columns`` as names: column groups (``vs_best``), their aliases (``ms``, ``mem``)
    or single record columns (``vs_best_p``), in the order given; None keeps the default.
    An unknown name is an error listing the names."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in items if n.strip()]
    record_names = {n for members in groups.values() for n in members}
    known = [*groups, *(a for a, k in COLUMN_ALIASES.items() if k in groups or k in record_names)]
    out: list[str] = []
    for name in names:
        key = COLUMN_ALIASES.get(name, name)
        if key not in groups and key not in record_names:
            raise RaybenchError(
                f"unknown column {name!r}{did_you_mean(name, known)} (columns: {', '.join(groups)})"
            )
        if key not in out:
            out.append(key)
    if not out:
        raise ParameterError("{columns} is empty: give column names, e.g. vs_best,ms,mem")
    return out


def group_of(name: str, groups: Mapping[str, Sequence[str]] = SUMMARY_GROUPS) -> str | None:
    """The column group a name belongs to (itself for a group; None for none)."""
    if name in groups:
        return name
    return next((g for g, members in groups.items() if name in members), None)


def record_names(
    chosen: Sequence[str] | None,
    all_names: Sequence[str],
    groups: Mapping[str, Sequence[str]] = SUMMARY_GROUPS,
) -> list[str]:
    """The record columns the flat formats write: all of them by default, else the
    always-shown groups, then each chosen group's columns (or the single chosen column),
    in the record's order within a group."""
    if chosen is None:
        return list(all_names)
    wanted: list[str] = []
    for name in [*(g for g in ALWAYS if g in groups), *chosen]:
        for column in groups.get(name, (name,)):
            if column in all_names and column not in wanted:
                wanted.append(column)
    return wanted
