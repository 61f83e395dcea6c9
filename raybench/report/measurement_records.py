"""The stored studies (bench, scaling, fidelity) and a sweep's trials as plain records, so
that ``raybench report`` writes every table an experiment holds in every format.

The rows are those the terminal shows: every bench invocation, the newest scaling
measurement of each (settings, solver, inner steps) with its solver's verdict, every
fidelity comparison, every trial. Values are as stored (``config_json`` left out: the
runs' own columns say what it holds).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raybench.results import ExperimentStore
from raybench.solver_catalog import family_rank

STUDY_TABLES = ("bench", "scaling", "fidelity", "trials")
TABLE_NAMES = ("summary", "runs", *STUDY_TABLES)
LEFT_OUT = ("config_json",)
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def bench_tables(store: ExperimentStore) -> list[tuple[str, pa.Table]]:
    """Each ``raybench bench`` invocation's table (file stem, rows), oldest first. Read
    as stored: the bench table has its own schema, not the runs table's."""
    tables = [(path.stem, pq.read_table(path)) for path in store.files("bench")]
    return sorted(tables, key=lambda item: _first_time(item[1]))


def _first_time(table: pa.Table) -> datetime:
    if "created_at" not in table.column_names or table.num_rows == 0:
        return _NEVER
    return table.column("created_at")[0].as_py() or _NEVER


def stored_tables(store: ExperimentStore) -> list[str]:
    """The tables ``raybench report`` can write for this experiment, in report order."""
    out = []
    if store.files("runs"):
        out += ["summary", "runs"]
    out += [name for name in STUDY_TABLES if store.files(name)]
    return out


def _names(table: pa.Table, extra: tuple[str, ...] = ()) -> list[str]:
    return [n for n in table.column_names if n not in LEFT_OUT] + list(extra)


def bench_records(store: ExperimentStore) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    names: list[str] = ["invocation"]
    for stem, table in bench_tables(store):
        rows += [{"invocation": stem, **row} for row in table.to_pylist()]
        names += [n for n in _names(table) if n not in names]
    return rows, names


def scaling_records(store: ExperimentStore) -> tuple[list[dict[str, Any]], list[str]]:
    from raybench.measurements.scaling import setting_groups, verdicts

    table = store.read("scaling")
    rows: list[dict[str, Any]] = []
    for _, members in setting_groups(table):
        texts = {v.solver: v.text for v in verdicts(members)}
        order = sorted(
            members,
            key=lambda r: (family_rank(r.get("family")), str(r["solver"]), r["inner_steps"]),
        )
        rows += [{**r, "verdict": texts.get(str(r["solver"]))} for r in order]
    return rows, _names(table, ("verdict",))


def fidelity_records(store: ExperimentStore) -> tuple[list[dict[str, Any]], list[str]]:
    table = store.read("fidelity")
    rows = sorted(
        table.to_pylist(),
        key=lambda r: (
            r.get("point_kind") != "init",
            str(r.get("point")),
            r.get("created_at") or _NEVER,
            family_rank(r.get("family")),
            str(r.get("solver")),
            r.get("knob_value") if r.get("knob_value") is not None else float("-inf"),
        ),
    )
    return rows, _names(table)


def trial_records(store: ExperimentStore) -> tuple[list[dict[str, Any]], list[str]]:
    table = store.read("trials")
    rows = sorted(table.to_pylist(), key=lambda r: (str(r.get("solver")), str(r.get("trial_id"))))
    return rows, _names(table)


STUDY_RECORDS = {
    "bench": bench_records,
    "scaling": scaling_records,
    "fidelity": fidelity_records,
    "trials": trial_records,
}

# The columns a LaTeX table of each study shows by default (a paper's page is narrow).
STUDY_LATEX_COLUMNS = {
    "bench": ("solver", "implementation", "ms_per_step", "ms_min", "peak_memory_mb",
              "speedup_vs_loop"),
    "scaling": ("solver", "inner_steps", "ms_per_step", "peak_memory_mb"),
    "fidelity": ("point", "solver", "knob", "knob_value", "cosine", "rel_error", "norm_ratio"),
    "trials": ("solver", "trial_id", "status", "val_acc", "steps"),
}  # fmt: skip
