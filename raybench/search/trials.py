"""A sweep's trials as rows of the ``trials`` table (declared in
:mod:`raybench.results.trials`): each trial's settings, curve, final metrics and status,
and the protocol's selection among them."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from raybench.config import RunConfig
from raybench.results.schema import SCHEMA_VERSION
from raybench.results.store import read_file
from raybench.results.trials import param_column, searchable, typed_value
from raybench.search.spaces import decode

METRIC = "val_acc"


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
        **{param_column(k): typed_value(bounds.get(k), v) for k, v in params.items()},
    }


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
