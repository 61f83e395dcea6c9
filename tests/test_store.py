"""The Parquet store and the report built from it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from rich.console import Console

from raybench.errors import RaybenchError
from raybench.report.tables import runs_table
from raybench.results import (
    CURVES_SCHEMA,
    SCHEMA_VERSION,
    ExperimentStore,
    load_checkpoint,
    open_experiment,
)
from raybench.solvers import METRICS, make_config
from raybench.train import RunResult


def fake_result(solver: str = "maml", seed: int = 0, acc: float = 80.0, **kw) -> RunResult:
    config = make_config(solver, "smoke", {"seed": seed})
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    curves = [
        {"step": s, "train_time_s": s * 0.1, "ms_per_step": 50.0, "grad_norm": 1.0}
        | {f"{w}_{m}": 50.0 for w in ("train", "val") for m in METRICS}
        for s in (2, 4)
    ]
    fields = dict(
        config=config,
        family="second-order" if solver == "maml" else "first-order",
        steps_done=4,
        curves=curves,
        final_val_acc=max(acc - 1.0, 0.0),
        test_acc_mean=acc,
        test_acc_ci95=2.0,
        test_tasks_n=8,
        wall_time_s=12.5,
        ms_per_step=40.0 if solver == "maml" else 10.0,
        peak_memory_mb=900.0,
        memory_kind="cpu_peak_rss",
        device="cpu: test",
        kernels="test CPU; ATen AVX2; torch 2",
        started_at=now,
        ended_at=now,
        params={"w": torch.arange(3.0)},
        init_fingerprint=f"init-{seed}",
        stream_fingerprint=f"stream-{seed}",
    )
    fields.update(kw)
    return RunResult(**fields)


def test_write_then_read_one_call(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    store.write_run(fake_result("maml", 0))
    store.write_run(fake_result("fomaml", 0, acc=70.0))
    store.write_run(fake_result("fomaml", 1, acc=72.0))
    runs = store.read("runs")
    assert runs.num_rows == 3
    rows = {r["run_id"]: r for r in runs.to_pylist()}
    maml = next(r for r in rows.values() if r["solver"] == "maml")
    assert maml["schema_version"] == SCHEMA_VERSION
    assert maml["experiment"] == "exp" and maml["family"] == "second-order"
    assert maml["inner_lr"] == 0.01 and maml["meta_batch"] == 2 and maml["bn"] == "batch"
    assert maml["test_acc_mean"] == 80.0 and maml["status"] == "completed"
    assert json.loads(maml["config_json"])["solver"] == "maml"
    assert maml["started_at"] == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert "torch" in json.loads(maml["versions_json"])
    assert maml["kernels"] == "test CPU; ATen AVX2; torch 2"
    assert maml["git_commit"]
    assert (maml["init_fingerprint"], maml["stream_fingerprint"]) == ("init-0", "stream-0")
    curves = store.read("curves")
    assert curves.num_rows == 6
    assert curves.schema.equals(CURVES_SCHEMA)
    # the checkpoint reads back with weights_only=True
    ckpt = load_checkpoint(store.root / maml["checkpoint"])
    assert torch.equal(ckpt["w"], torch.arange(3.0))
    # plain Parquet: each file reads on its own too
    assert pq.read_table(store.path("runs", maml["run_id"])).num_rows == 1


def test_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ExperimentStore(tmp_path / "exp")
    result = fake_result()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError):
        store.write_run(result)
    monkeypatch.undo()
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".parquet"]
    assert leftovers == []
    assert not store.has_run(result.config.run_id)
    assert store.read("runs").num_rows == 0
    store.write_run(result)
    assert store.has_run(result.config.run_id)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_older_schema_reads_with_nulls(tmp_path: Path) -> None:
    """A store written by an older raybench (fewer columns, accuracies as fractions) reads
    and reports with today's meaning: missing columns null, accuracies in percent."""
    store = ExperimentStore(tmp_path / "exp")
    store.write_run(fake_result("maml"))
    old = pa.table(
        {
            "run_id": ["old-1"],
            "solver": ["fomaml"],
            "status": ["completed"],
            "test_acc_mean": [0.5],
        }
    )
    pq.write_table(old, store.root / "runs" / "old-1.parquet")
    runs = store.read("runs")
    assert runs.num_rows == 2
    old_row = next(r for r in runs.to_pylist() if r["run_id"] == "old-1")
    assert old_row["inner_lr"] is None and old_row["test_acc_mean"] == 50.0
    text = render(runs_table(runs))
    assert "50.00" in text and "80.00 ± 2.00" in text


def render(table) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(table)
    return console.export_text()


def test_report_table_content_and_best_values(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    store.write_run(fake_result("maml", acc=80.0))
    store.write_run(fake_result("fomaml", acc=70.0))
    store.write_run(fake_result("fomaml", seed=1, acc=0.0, status="diverged", test_acc_ci95=None))
    table = runs_table(store.read("runs"))
    text = render(table)
    lines = [line for line in text.splitlines() if "maml" in line]
    fomaml_line = next(line for line in lines if "fomaml" in line and "completed" in line)
    maml_line = next(
        line for line in lines if line.strip().startswith("│ maml") or " maml " in line
    )
    assert "70.00 ± 2.00" in fomaml_line and "first-order" in fomaml_line
    assert "80.00 ± 2.00" in maml_line and "second-order" in maml_line
    assert "diverged" in text
    # order of Table 2: first-order before second-order
    assert text.index("fomaml") < text.index("second-order")
    # best values are highlighted: the best test accuracy and the fastest ms/step
    console = Console(record=True, width=200, force_terminal=True, color_system="standard")
    console.print(table)
    styled = console.export_text(styles=True)
    assert "\x1b[1;32m80.00 ± 2.00" in styled
    assert "\x1b[1;32m10.0" in styled
    assert "\x1b[1;32m70.00" not in styled


def test_open_experiment_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RaybenchError, match="no experiment 'missing'") as info:
        open_experiment("missing", tmp_path)
    assert "\n" not in str(info.value)
    ExperimentStore(tmp_path / "exp").write_run(fake_result())
    assert open_experiment("exp", tmp_path).read("runs").num_rows == 1
    assert open_experiment(str(tmp_path / "exp"), Path("elsewhere")).name == "exp"
