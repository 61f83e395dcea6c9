"""Reading files of older schema versions with today's meaning.

Each stored file carries its ``schema_version``; a file written by an older raybench is
upgraded when it is read (never rewritten), so reports over a store that spans versions
compare like with like. Version 1 stored accuracies as fractions; from version 2 every
accuracy column is in percent. Version 1 also predates ``eval_adaptation``: iMAML was then
evaluated with its own proximal inner loop, every other solver with plain SGD, and the
upgraded row says so.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# The tables whose files carry the results schema's version (studies version their own).
RESULTS_TABLES = ("runs", "curves", "tasks", "trials")
ACCURACY_COLUMNS = ("final_val_acc", "test_acc_mean", "test_acc_ci95", "val_acc", "best_val_acc")


def is_accuracy(column: str) -> bool:
    """Whether a stored column holds an accuracy (in percent since version 2)."""
    return column in ACCURACY_COLUMNS or "_acc_" in column or column.endswith("_acc")


def file_version(table: pa.Table) -> int:
    """The schema version a file was written with (1 where it predates the column)."""
    if "schema_version" not in table.column_names or table.num_rows == 0:
        return 1
    value = table.column("schema_version")[0].as_py()
    return int(value) if value is not None else 1


def upgrade(table: pa.Table, table_name: str = "runs") -> pa.Table:
    """``table`` (one stored file of the store's ``table_name`` table) with the meaning of
    the current schema version; a study's table (own version) is returned as it is."""
    if table_name not in RESULTS_TABLES:
        return table
    table = _baseline_classifier_columns(table)
    if table_name == "trials":  # one schema for every solver's file (integers as integers)
        from raybench.results.trials import conform

        table = conform(table)
    if file_version(table) >= 2:
        return table
    for name in table.column_names:
        if is_accuracy(name) and pa.types.is_floating(table.schema.field(name).type):
            table = _replace(table, name, pc.multiply(table.column(name), 100.0))
    if "history_json" in table.column_names:  # a sweep's trials: each trial's curve
        histories = [_history_to_percent(h) for h in table.column("history_json").to_pylist()]
        table = _replace(table, "history_json", pa.array(histories, pa.string()))
    if (
        table_name == "runs"
        and "solver" in table.column_names
        and "config_json" in table.column_names
    ):
        table = _eval_adaptation_v1(table)
    return table


def _replace(table: pa.Table, name: str, values: Any) -> pa.Table:
    i = table.column_names.index(name)
    return table.set_column(i, table.schema.field(name).with_type(values.type), values)


def _history_to_percent(text: str | None) -> str | None:
    if not text:
        return text
    points = json.loads(text)
    for point in points:
        if isinstance(point, dict) and isinstance(point.get("val_acc"), (int, float)):
            point["val_acc"] = 100 * point["val_acc"]
    return json.dumps(points)


def _eval_adaptation_v1(table: pa.Table) -> pa.Table:
    """Version-1 runs name how they were evaluated: iMAML by its own loop."""
    solvers = table.column("solver").to_pylist()
    modes = ["solver" if s == "imaml" else "plain" for s in solvers]
    configs = []
    for text, mode in zip(table.column("config_json").to_pylist(), modes):
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            data.setdefault("eval_adaptation", mode)
            text = json.dumps(data, sort_keys=True)
        configs.append(text)
    table = _replace(table, "config_json", pa.array(configs, pa.string()))
    column = pa.array(modes, pa.string())
    if "eval_adaptation" in table.column_names:
        return _replace(table, "eval_adaptation", column)
    return table.append_column(pa.field("eval_adaptation", pa.string()), column)


def _baseline_classifier_columns(table: pa.Table) -> pa.Table:
    """Curves of a fine-tuning baseline written before the ``train_classifier_*`` columns
    stored the pre-training classifier's loss and accuracy as ``train_query_*_pre``: move
    them to the columns that say what they are, leaving the query columns empty."""
    names = table.column_names
    if "solver" not in names or "train_query_loss_pre" not in names or table.num_rows == 0:
        return table
    if "train_classifier_loss" in names and table.column("train_classifier_loss").null_count == 0:
        return table
    solvers = set(table.column("solver").to_pylist())
    if not solvers or not all(_is_baseline(s) for s in solvers):
        return table
    for old, new in (
        ("train_query_loss_pre", "train_classifier_loss"),
        ("train_query_acc_pre", "train_classifier_acc"),
    ):
        if old not in table.column_names:
            continue
        values = table.column(old)
        empty = pa.nulls(table.num_rows, values.type)
        table = _replace(table, old, empty)
        if new in table.column_names:
            table = _replace(table, new, values)
        else:
            table = table.append_column(pa.field(new, values.type), values)
    return table


def _is_baseline(solver: str | None) -> bool:
    from raybench.solver_catalog import family_of

    return family_of(solver) == "baseline"
