"""The Parquet schema of the ``runs``, ``curves`` and ``tasks`` tables, versioned.

Columns are declared once here; a reader of an older store gets the columns that store has
(missing ones read as null), so reports keep working across versions. Bump
``SCHEMA_VERSION`` when a column changes meaning, not when one is added, and teach
``raybench.results.versions`` to read the older meaning.

Version history: 1, accuracies as fractions; 2, every accuracy column of every table in
percent (0-100), and the ``tasks`` table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from raybench.code_version import code_fingerprint
from raybench.config import RUN_BOUNDS
from raybench.metrics import CURVE_FIELDS, METRICS, TASK_METRICS, TRAIN_METRICS
from raybench.solver_catalog import option_bounds

if TYPE_CHECKING:
    from raybench.train import RunResult

SCHEMA_VERSION = 2

_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
_TIME = pa.timestamp("us", tz="UTC")

# Config columns: every setting of RunConfig except `device` (the device actually used is
# its own column) and the seed (listed with the identity columns).
CONFIG_COLUMNS = [
    pa.field(name, _ARROW[bound.kind])
    for name, bound in RUN_BOUNDS.items()
    if name not in ("device", "seed")
]

RUNS_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int32()),
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("solver", pa.string()),
        pa.field("family", pa.string()),
        pa.field("status", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("preset", pa.string()),
        pa.field("source", pa.string()),  # preset or tuned config (later: sweeps)
        *CONFIG_COLUMNS,
        pa.field("device_setting", pa.string()),
        pa.field("config_fingerprint", pa.string()),
        pa.field("config_json", pa.string()),
        pa.field("steps_done", pa.int64()),
        pa.field("resumed_from_step", pa.int64()),  # 0, or where an interrupted run went on
        pa.field("final_val_acc", pa.float64()),
        pa.field("test_acc_mean", pa.float64()),
        pa.field("test_acc_ci95", pa.float64()),
        pa.field("test_tasks_n", pa.int64()),
        pa.field("wall_time_s", pa.float64()),
        pa.field("train_time_s", pa.float64()),
        pa.field("ms_per_step", pa.float64()),
        pa.field("peak_memory_mb", pa.float64()),
        pa.field("memory_kind", pa.string()),
        pa.field("device", pa.string()),
        # raybench.runtime.kernel_set: bitwise reproduction holds only on the same kernels
        pa.field("kernels", pa.string()),
        pa.field("node", pa.string()),
        pa.field("resources", pa.string()),
        pa.field("n_params", pa.int64()),
        pa.field("torch_version", pa.string()),
        pa.field("versions_json", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("code_fingerprint", pa.string()),  # raybench.code_version
        pa.field("init_fingerprint", pa.string()),  # raybench.pairing: what seeds share
        pa.field("stream_fingerprint", pa.string()),
        pa.field("started_at", _TIME),
        pa.field("ended_at", _TIME),
        pa.field("error", pa.string()),
        pa.field("checkpoint", pa.string()),
    ]
)

# Training rows also carry the baselines' pre-training classifier metrics (null for others).
CURVE_METRICS = [f"train_{m}" for m in TRAIN_METRICS] + [f"val_{m}" for m in METRICS]

CURVES_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int32()),
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("solver", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("step", pa.int64()),
        pa.field("train_time_s", pa.float64()),
        pa.field("ms_per_step", pa.float64()),
        pa.field("grad_norm", pa.float64()),
        *[pa.field(name, pa.float64()) for name in CURVE_METRICS],
        # implicit solvers' assumptions at the evaluation point (null for other solvers)
        *[pa.field(name, _ARROW[kind]) for name, kind in CURVE_FIELDS],
    ]
)


# One row per fixed test task of a tested run: the per-task results that make paired
# comparisons possible. ``task`` is the position in the setting's fixed test set (the same
# task for every solver, seed and device); ``task_key`` identifies the task's content
# (characters, rotations, drawings, labels), so that pairing is checked, not assumed.
TASKS_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int32()),
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("solver", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("config_fingerprint", pa.string()),
        pa.field("task", pa.int64()),
        pa.field("task_key", pa.string()),
        *[pa.field(name, pa.float64()) for name in TASK_METRICS],
    ]
)


def option_column(solver: str, knob: str) -> str:
    """``imaml`` + ``lam`` -> ``imaml_lam``; hyphens become underscores (SQL-friendly)."""
    return f"{solver}_{knob}".replace("-", "_")


def option_fields() -> list[pa.Field]:
    """Every registered solver's knobs as ``<solver>_<knob>`` columns, typed from their
    bounds. Every run file carries all of them (null for other solvers), so the files share
    one schema and any Parquet reader can take a whole folder without unifying schemas."""
    return [
        pa.field(option_column(solver, knob), _ARROW[bound.kind])
        for solver, bounds in sorted(option_bounds().items())
        for knob, bound in bounds.items()
    ]


def run_row(
    result: RunResult, experiment: str, source: str = "preset", checkpoint: str | None = None
) -> pa.Table:
    """One row of the ``runs`` table."""
    from raybench.runtime import git_commit, library_versions

    cfg = result.config
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": cfg.run_id,
        "experiment": experiment,
        "solver": cfg.solver,
        "family": result.family,
        "status": result.status,
        "seed": cfg.seed,
        "preset": cfg.preset,
        "source": source,
        **{f.name: getattr(cfg, f.name) for f in CONFIG_COLUMNS},
        "eval_inner_steps": cfg.adapt_steps_eval,
        "device_setting": cfg.device,
        "config_fingerprint": cfg.fingerprint(),
        "config_json": cfg.to_json(),
        "steps_done": result.steps_done,
        "resumed_from_step": result.resumed_from_step,
        "final_val_acc": result.final_val_acc,
        "test_acc_mean": result.test_acc_mean,
        "test_acc_ci95": result.test_acc_ci95,
        "test_tasks_n": result.test_tasks_n,
        "wall_time_s": result.wall_time_s,
        "train_time_s": result.train_time_s,
        "ms_per_step": result.ms_per_step,
        "peak_memory_mb": result.peak_memory_mb,
        "memory_kind": result.memory_kind,
        "device": result.device,
        "kernels": result.kernels or None,
        "node": result.node,
        "resources": result.resources,
        "n_params": result.n_params,
        "torch_version": library_versions()["torch"],
        "versions_json": json.dumps(library_versions(), sort_keys=True),
        "git_commit": result.git_commit or git_commit(),
        "code_fingerprint": result.code_fingerprint or code_fingerprint(),
        "init_fingerprint": result.init_fingerprint,
        "stream_fingerprint": result.stream_fingerprint,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "error": result.error,
        "checkpoint": checkpoint,
    }
    fields = option_fields()
    for knob, value in cfg.solver_options.items():
        data[option_column(cfg.solver, knob)] = value
    schema = pa.schema(list(RUNS_SCHEMA) + fields)
    return pa.Table.from_pylist([data], schema=schema)


def curve_rows(result: RunResult, experiment: str) -> pa.Table:
    """The run's evaluation points as rows of the ``curves`` table."""
    cfg = result.config
    base = {
        "schema_version": SCHEMA_VERSION,
        "run_id": cfg.run_id,
        "experiment": experiment,
        "solver": cfg.solver,
        "seed": cfg.seed,
    }
    return pa.Table.from_pylist([{**base, **row} for row in result.curves], schema=CURVES_SCHEMA)


def task_rows(result: RunResult, experiment: str) -> pa.Table | None:
    """The run's per-task test results as rows of the ``tasks`` table (None if untested)."""
    if not result.tasks or result.task_keys is None:
        return None
    cfg = result.config
    n = len(result.task_keys)
    columns = {
        "schema_version": [SCHEMA_VERSION] * n,
        "run_id": [cfg.run_id] * n,
        "experiment": [experiment] * n,
        "solver": [cfg.solver] * n,
        "seed": [cfg.seed] * n,
        "config_fingerprint": [cfg.fingerprint()] * n,
        "task": list(range(n)),
        "task_key": result.task_keys,
        **{m: result.tasks[m] for m in TASK_METRICS},
    }
    return pa.Table.from_pydict(columns, schema=TASKS_SCHEMA)
