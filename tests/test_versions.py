"""Stores written by an older raybench read with today's meaning (schema versions)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raybench.report.records import aggregate_runs
from raybench.results import SCHEMA_VERSION, ExperimentStore
from raybench.results.versions import is_accuracy
from raybench.solvers import make_config


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_version_1_fractions_read_as_percent(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    config = make_config("imaml", "smoke")
    old_config = config.to_dict()
    del old_config["eval_adaptation"]  # version 1 did not know the setting
    write(
        store.path("runs", "imaml-1"),
        [
            {
                "schema_version": 1,
                "run_id": "imaml-1",
                "solver": "imaml",
                "status": "completed",
                "ways": 5,
                "shots": 1,
                "preset": "smoke",
                "test_acc_mean": 0.5,
                "test_acc_ci95": 0.02,
                "final_val_acc": 0.25,
                "config_json": json.dumps(old_config),
                "config_fingerprint": config.fingerprint(),
            }
        ],
    )
    write(
        store.path("curves", "imaml-1"),
        [
            {
                "schema_version": 1,
                "run_id": "imaml-1",
                "step": 2,
                "val_query_acc_post": 0.25,
                "train_query_loss_pre": 1.5,
            }
        ],
    )
    write(
        store.root / "trials" / "imaml.parquet",
        [
            {
                "schema_version": 1,
                "solver": "imaml",
                "val_acc": 0.4,
                "best_val_acc": 0.45,
                "history_json": json.dumps([{"step": 2, "val_acc": 0.45}]),
            }
        ],
    )
    run = store.read("runs").to_pylist()[0]
    assert (run["test_acc_mean"], run["test_acc_ci95"], run["final_val_acc"]) == pytest.approx(
        (50.0, 2.0, 25.0)
    )
    # iMAML was evaluated with its own inner loop then, and the row says so
    assert run["eval_adaptation"] == "solver"
    assert json.loads(run["config_json"])["eval_adaptation"] == "solver"
    curve = store.read("curves").to_pylist()[0]
    assert curve["val_query_acc_post"] == pytest.approx(25.0)
    assert curve["train_query_loss_pre"] == 1.5  # losses keep their unit
    trial = store.read("trials").to_pylist()[0]
    assert (trial["val_acc"], trial["best_val_acc"]) == pytest.approx((40.0, 45.0))
    assert json.loads(trial["history_json"])[0]["val_acc"] == pytest.approx(45.0)
    (record,) = aggregate_runs(store.read("runs"), store.read("curves"))
    assert record["test_acc"] == pytest.approx(50.0)


def test_current_files_are_left_as_they_are(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    write(
        store.path("runs", "r"),
        [
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": "r",
                "solver": "maml",
                "test_acc_mean": 50.0,
                "config_json": "{}",
            }
        ],
    )
    run = store.read("runs").to_pylist()[0]
    assert run["test_acc_mean"] == 50.0 and "eval_adaptation" not in run


def test_every_stored_accuracy_column_is_known_as_one() -> None:
    from raybench.results.schema import CURVES_SCHEMA, RUNS_SCHEMA, TASKS_SCHEMA

    for schema in (RUNS_SCHEMA, CURVES_SCHEMA, TASKS_SCHEMA):
        for name in schema.names:
            assert is_accuracy(name) == ("acc" in name), name


def test_only_the_results_tables_are_upgraded() -> None:
    """A study's table has its own schema version: its version 1 is not the results' 1."""
    from raybench.results.versions import upgrade

    config = json.dumps(make_config("imaml", "smoke").to_dict())
    row = {"schema_version": 1, "solver": "imaml", "config_json": config, "rel_acc": 0.5}
    study = pa.Table.from_pylist([{**row, "study_id": "s"}])
    assert upgrade(study, "fidelity").equals(study)
    curves = upgrade(pa.Table.from_pylist([{**row, "run_id": "r"}]), "curves")
    assert curves.column("rel_acc").to_pylist() == [50.0]
    assert "eval_adaptation" not in curves.column_names
    runs = upgrade(pa.Table.from_pylist([{**row, "run_id": "r"}]), "runs")
    assert runs.column("eval_adaptation").to_pylist() == ["solver"]
