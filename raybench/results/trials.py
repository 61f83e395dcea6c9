"""The ``trials`` table: one row per trial of a sweep, one fixed schema for every solver.

Every trials file has the same columns in the same order, whatever solver it holds: a
``param_<key>`` column for every setting a search space may search (the run settings and
every registered solver's knobs, ``imaml.lam`` as ``param_imaml_lam``), typed from the
setting (integers as integers, choices as text), null where the trial did not search it.
So ``pd.read_parquet("<experiment>/trials")`` reads all solvers' files together, as it
reads the runs table. Files written before the schema was fixed are conformed on read.
Declared here, beside the other tables, so that reading a store needs no search code.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from raybench.config import NEVER_SEARCHED, RUN_BOUNDS, Bound

_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def searchable() -> dict[str, Bound]:
    """Every key a search space may name (``--set`` keys), with its bound."""
    from raybench.solver_catalog import option_bounds

    keys = {k: b for k, b in RUN_BOUNDS.items() if k not in NEVER_SEARCHED}
    for solver, bounds in sorted(option_bounds().items()):
        keys.update({f"{solver}.{knob}": bound for knob, bound in bounds.items()})
    return keys


def param_column(key: str) -> str:
    """``imaml.lam`` -> ``param_imaml_lam`` (SQL-friendly: no dots or hyphens)."""
    return "param_" + key.replace(".", "_").replace("-", "_")


def trials_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("schema_version", pa.int32()),
            pa.field("experiment", pa.string()),
            pa.field("solver", pa.string()),
            pa.field("trial_id", pa.string()),  # Ray Tune's; the Optuna trial names it too
            pa.field("status", pa.string()),  # completed | stopped | errored | diverged
            pa.field("default", pa.bool_()),  # the solver's default configuration
            pa.field("selected", pa.bool_()),  # the protocol's choice: final runs use it
            pa.field("val_acc", pa.float64()),
            pa.field("best_val_acc", pa.float64()),
            pa.field("steps", pa.int64()),
            pa.field("evaluations", pa.int64()),
            pa.field("time_s", pa.float64()),
            pa.field("error", pa.string()),
            pa.field("params_json", pa.string()),
            pa.field("history_json", pa.string()),
            *[pa.field(param_column(k), _ARROW[b.kind]) for k, b in searchable().items()],
        ]
    )


TRIALS_SCHEMA = trials_schema()


def typed_value(bound: Bound | None, value: Any) -> Any:
    if value is None or bound is None:
        return value
    if bound.kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def trials_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows in the fixed schema (a parameter no setting has, from an old space, is left to
    ``params_json``)."""
    return pa.Table.from_pylist(rows, schema=TRIALS_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """A trials file of any age in today's schema: missing parameters as null, parameters
    stored as floats (before integers were kept) cast back where they are whole."""
    columns, fields = [], []
    for field in TRIALS_SCHEMA:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            column = table.column(field.name)
            if column.type != field.type:
                with contextlib.suppress(pa.ArrowException):
                    column = pc.cast(column, field.type)  # safe: 3.5 stays a float
            columns.append(column)
            field = field.with_type(column.type)
        fields.append(field)
    extra = [n for n in table.column_names if n not in TRIALS_SCHEMA.names]
    for name in extra:  # kept as stored: a column of an older raybench
        columns.append(table.column(name))
        fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
