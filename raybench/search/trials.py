"""The ``trials`` table: one row per trial of a sweep, one fixed schema for every solver.

Every trials file has the same columns in the same order, whatever solver it holds: a
``param_<key>`` column for every setting a search space may search (the run settings and
every registered solver's knobs, ``imaml.lam`` as ``param_imaml_lam``), typed from the
setting (integers as integers, choices as text), null where the trial did not search it.
So ``pd.read_parquet("<experiment>/trials")`` reads all solvers' files together, as it
reads the runs table. Files written before the schema was fixed are conformed on read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from raybench.config import RUN_BOUNDS, Bound, RunConfig
from raybench.results.schema import SCHEMA_VERSION
from raybench.results.store import read_file
from raybench.search.spaces import FIXED, decode

METRIC = "val_acc"
_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def searchable() -> dict[str, Bound]:
    """Every key a search space may name (``--set`` keys), with its bound."""
    from raybench.solvers.base import option_bounds

    keys = {k: b for k, b in RUN_BOUNDS.items() if k not in FIXED}
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


def _typed(bound: Bound | None, value: Any) -> Any:
    if value is None or bound is None:
        return value
    if bound.kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def trial_status(base: RunConfig, params: dict[str, Any], metrics: dict, error: str | None) -> str:
    """completed (ran all its meta-steps), stopped (by ASHA), errored or diverged."""
    if error is not None:
        return "errored"
    if metrics.get("status") == "diverged":
        return "diverged"
    if int(metrics.get("step") or 0) >= trial_steps(base, params):
        return "completed"
    return "stopped"


def trial_steps(base: RunConfig, params: dict[str, Any]) -> int:
    return int(params.get("meta_steps", base.meta_steps))


def trial_row(
    solver: str,
    experiment: str,
    base: RunConfig,
    trial_id: str,
    config: dict,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    error: str | None,
    default_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the ``trials`` table: a trial's settings, curve, final metrics, status;
    ``default``: its settings are ``default_params`` (decoded), the enqueued default."""
    params = decode(config or {})
    bounds = searchable()
    value = metrics.get(METRIC)
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment,
        "solver": solver,
        "trial_id": trial_id,
        "status": trial_status(base, params, metrics, error),
        "default": default_params is not None and same_params(params, default_params),
        "selected": False,  # set on the whole table when the search ends
        "val_acc": None if value is None else float(value),
        "best_val_acc": max((h[METRIC] for h in history), default=None),
        "steps": int(metrics.get("step") or 0),
        "evaluations": int(metrics.get("training_iteration") or 0),
        "time_s": float(metrics.get("time_total_s") or 0.0),
        "error": None if error is None else " ".join(error.split())[:500],
        "params_json": json.dumps(params, sort_keys=True),
        "history_json": json.dumps(history),
        **{param_column(k): _typed(bounds.get(k), v) for k, v in params.items()},
    }


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


def same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same settings (floats equal to rounding: they pass through Optuna's storage)."""
    if set(a) != set(b):
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, float) or isinstance(other, float):
            if not isinstance(other, int | float) or not isinstance(value, int | float):
                return False
            if not math.isclose(value, other, rel_tol=1e-12, abs_tol=0.0):
                return False
        elif value != other:
            return False
    return True


def selected_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The protocol's selection: the completed trial with the best final validation
    accuracy; on a tie, the default, then the first in the table."""
    done = [r for r in rows if r["status"] == "completed" and r["val_acc"] is not None]
    if not done:
        return None
    return max(done, key=lambda r: (r["val_acc"], bool(r.get("default"))))


def best_trial(rows: list[dict[str, Any]]) -> tuple[dict | None, float | None]:
    """The selected trial's parameters and final validation accuracy: the measure both
    the live display and the selected best config use."""
    best = selected_row(rows)
    if best is None:
        return None, None
    return json.loads(best["params_json"]), float(best["val_acc"])


def mark_selected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``selected`` set on the protocol's choice alone."""
    best = selected_row(rows)
    return [{**r, "selected": r is best} for r in rows]


def recorded_trials(folder: Path) -> list[dict[str, Any]]:
    """The trials recorded so far (an unreadable record is a trial to sample again)."""
    rows = []
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        entry = read_file("trials", path)
        if entry.table is not None:
            rows += entry.table.to_pylist()
    return rows


def error_text(trial: Any) -> str:
    """The last line of a trial's error file (the exception), or a generic word."""
    with contextlib.suppress(Exception):
        path = trial.error_file
        if path and os.path.isfile(path):
            lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1]
    return "the trial failed"
