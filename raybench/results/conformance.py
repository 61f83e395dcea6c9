"""Whether a stored file is rows of its table, judged by the schema raybench declares.

A file is never judged against the other files of its folder (the first by name used to be
the reference, so one bad file made every good one look odd): each declared column it has
must be of the declared kind (an integer column holds integers, an accuracy a number), and
its values must be plausible: accuracies within 0-100 (and a number in a completed run),
a known status, seeds, steps, tasks and times not negative, seeds and steps within a run's
declared bounds, settings within theirs, names (run, experiment, solver, ...) never a path,
a hidden name or control characters. A file that does not
conform is reported and skipped on its own. Rows are identified by their key (one row per
run, per run and step, per run and task); a row repeated within a file is counted once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from raybench.errors import RaybenchError
from raybench.results.versions import file_version, is_accuracy

# The columns that identify one row of each table.
IDENTITY: dict[str, tuple[str, ...]] = {
    "runs": ("run_id",),
    "curves": ("run_id", "step"),
    "tasks": ("run_id", "task"),
    "trials": ("solver", "trial_id"),
}
STATUSES: dict[str, tuple[str, ...]] = {
    "runs": ("completed", "diverged", "failed"),
    "trials": ("completed", "stopped", "errored", "diverged"),
}
# Counts, steps and times: never negative (NaN, a time not measured, is allowed).
NON_NEGATIVE = (
    "seed", "step", "task", "steps_done", "resumed_from_step", "test_tasks_n", "wall_time_s",
    "train_time_s", "ms_per_step", "peak_memory_mb", "n_params", "time_s", "steps",
    "evaluations", "schema_version",
)  # fmt: skip
# Counts and steps beyond any run's declared bounds (``raybench.config.RUN_BOUNDS``): the
# setting each may not exceed.
AT_MOST = {
    "seed": "seed", "step": "meta_steps", "steps_done": "meta_steps",
    "resumed_from_step": "meta_steps", "test_tasks_n": "test_tasks",
}  # fmt: skip
# Names that raybench makes and may turn into file names or print: never a path, a hidden
# name, control characters or a page of text.
NAMES = ("run_id", "experiment", "solver", "family", "source", "preset", "trial_id")
NAME_LENGTH = 200


def name_problem(value: str) -> str:
    """Why a stored name is implausible ("" when it is not)."""
    if len(value) > NAME_LENGTH:
        return f"is longer than {NAME_LENGTH} characters"
    if "/" in value or "\\" in value or value.startswith("."):
        return "is a path or a hidden name"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "holds control characters"
    return ""


@functools.cache
def declared_schema(table_name: str) -> pa.Schema | None:
    """The schema raybench writes ``table_name`` with (None: a study's own table)."""
    if table_name == "runs":
        from raybench.results.schema import RUNS_SCHEMA, option_fields

        return pa.schema([*RUNS_SCHEMA, *option_fields()])
    if table_name == "curves":
        from raybench.results.schema import CURVES_SCHEMA

        return CURVES_SCHEMA
    if table_name == "tasks":
        from raybench.results.schema import TASKS_SCHEMA

        return TASKS_SCHEMA
    if table_name == "trials":
        from raybench.results.trials import TRIALS_SCHEMA

        return TRIALS_SCHEMA
    return None


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_null(dtype):
        return "null"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    return str(dtype)


# The stored kinds each declared kind accepts (an integer is a number; null is no value).
_ACCEPTS = {
    "integer": ("integer", "null"),
    "number": ("number", "integer", "null"),
    "text": ("text", "null"),
    "bool": ("bool", "null"),
    "timestamp": ("timestamp", "null"),
}


@functools.cache
def _declared_fields(table_name: str) -> dict[str, pa.Field]:
    schema = declared_schema(table_name)
    return {} if schema is None else {f.name: f for f in schema}


def type_problem(table_name: str, table: pa.Table) -> str:
    """Why a file's columns are not of the declared kinds ("" when they are)."""
    declared = _declared_fields(table_name)
    for field in table.schema:
        target = declared.get(field.name)
        if target is None or target.type == field.type:
            continue  # undeclared: a column of another version of raybench, kept as stored
        want, have = _kind(target.type), _kind(field.type)
        if have not in _ACCEPTS.get(want, (want, "null")):
            return f"column {field.name!r} holds {have}, raybench declares {want}"
    return ""


def cast_declared(table_name: str, table: pa.Table) -> pa.Table:
    """Declared columns in their declared types, so files of one table always combine."""
    declared = _declared_fields(table_name)
    for i, field in enumerate(table.schema):
        target = declared.get(field.name)
        if target is not None and field.type != target.type:
            table = table.set_column(i, target, table.column(i).cast(target.type))
    return table


def value_problem(table_name: str, table: pa.Table) -> str:
    """Why a file's values are implausible ("" when they are not)."""
    names = table.column_names
    for name in names:
        dtype = table.schema.field(name).type
        numeric = pa.types.is_integer(dtype) or pa.types.is_floating(dtype)
        if numeric and is_accuracy(name):
            bad = _first(table, name, lambda v: not (0.0 <= v <= 100.0))
            if bad is not None:
                return f"{name} {bad!r} is not an accuracy in percent (0-100)"
        elif numeric and name in NON_NEGATIVE:
            bad = _first(table, name, lambda v: v < 0 or math.isinf(v))
            if bad is not None:
                return f"{name} {bad!r} is negative or infinite"
            if name in AT_MOST:
                high = _upper_bound(AT_MOST[name])
                bad = _first(table, name, lambda v, high=high: v > high)
                if bad is not None:
                    return f"{name} {bad!r} is beyond any run's ({AT_MOST[name]} at most {high})"
    for name in (n for n in NAMES if n in names):
        if not pa.types.is_string(table.schema.field(name).type):
            continue
        for value in table.column(name).unique().to_pylist():
            why = "" if value is None else name_problem(value)
            if why:
                return f"{name} {value[:60]!r} {why}"
    statuses = STATUSES.get(table_name)
    if statuses and "status" in names:
        old = file_version(table) < 2  # version 1 left a trial's status empty
        for value in table.column("status").to_pylist():
            if value not in statuses and not (value is None and old):
                return f"status {value!r} is none of {', '.join(statuses)}"
    if table_name == "runs":
        return _untested_problem(table) or _settings_problem(table)
    return ""


@functools.cache
def _upper_bound(setting: str) -> float:
    from raybench.config import RUN_BOUNDS

    high = RUN_BOUNDS[setting].high
    return math.inf if high is None else float(high)


def _untested_problem(table: pa.Table) -> str:
    """A completed run has its accuracies: NaN (never a percentage) marks a damaged row
    (the report would count the run and average without it)."""
    if "status" not in table.column_names:
        return ""
    done = [s == "completed" for s in table.column("status").to_pylist()]
    for name in ("test_acc_mean", "final_val_acc"):
        if name not in table.column_names:
            continue
        for value, completed in zip(table.column(name).to_pylist(), done):
            if completed and isinstance(value, float) and math.isnan(value):
                return f"{name} is NaN in a completed run"
    return ""


def _first(table: pa.Table, name: str, bad: Callable[[float], bool]) -> Any:
    """The first non-null, non-NaN value of a column for which ``bad`` holds, or None."""
    column = table.column(name)
    if column.null_count == len(column):
        return None
    values = column.to_numpy(zero_copy_only=False).astype(float)  # nulls as NaN
    finite = values[~np.isnan(values)]
    if finite.size == 0 or not any(bad(v) for v in (finite.min(), finite.max())):
        return None  # the extremes hold: every value does (each test is a range)
    for value in column.to_pylist():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if bad(float(value)):
            return value
    return None


def _settings_problem(table: pa.Table) -> str:
    """A run's settings within the bounds ``raybench run --set`` enforces."""
    from raybench.config import RUN_BOUNDS
    from raybench.results.schema import option_column
    from raybench.solver_catalog import option_bounds

    bounds = {k: b for k, b in RUN_BOUNDS.items() if k not in ("device", "seed")}
    for solver, knobs in option_bounds().items():
        bounds.update({option_column(solver, knob): b for knob, b in knobs.items()})
    for name in table.column_names:
        bound = bounds.get(name)
        if bound is None:
            continue
        for value in table.column(name).to_pylist():
            if value is None:
                continue
            try:
                bound.parse(name, value)
            except RaybenchError:
                return f"{name} {value!r} is outside its declared range ({bound.describe()})"
    return ""


def repeated_rows(table_name: str, table: pa.Table) -> list[int]:
    """Positions of rows whose key an earlier row of the file has (the first one counts)."""
    key = IDENTITY.get(table_name)
    if key is None or not all(c in table.column_names for c in key) or table.num_rows < 2:
        return []
    columns = [table.column(c).to_pylist() for c in key]
    seen: set[tuple[Any, ...]] = set()
    repeated = []
    for i, row in enumerate(zip(*columns)):
        if row in seen:
            repeated.append(i)
        seen.add(row)
    return repeated


def without_rows(table: pa.Table, positions: list[int]) -> pa.Table:
    drop = set(positions)
    return table.take([i for i in range(table.num_rows) if i not in drop])
