"""The CLI through its real entry points (console script and ``python -m``), on real Omniglot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from cli_checks import one_line_error, run_main

from raybench.results.schema import CURVE_METRICS
from raybench.solvers import SOLVERS

RAYBENCH = Path(sys.executable).parent / "raybench"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAYBENCH), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")  # one run for the session, whatever the test order
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real `raybench run --preset smoke` shared by the tests below."""
    cwd = tmp_path_factory.mktemp("cli")
    proc = cli("run", "--preset", "smoke", "--solvers", "all", cwd=cwd)
    return cwd, proc


@pytest.mark.ray
@pytest.mark.slow
def test_run_smoke_end_to_end_into_parquet(smoke_run) -> None:
    cwd, proc = smoke_run
    assert proc.returncode == 0, proc.stderr
    assert "maml" in proc.stdout and "fomaml" in proc.stdout  # the report at the end
    # the embedded Ray keeps token authentication without announcing it at every start
    assert "Token authentication" not in proc.stderr + proc.stdout
    runs = ds.dataset(cwd / "outputs" / "smoke" / "runs").to_table().to_pylist()
    assert sorted(r["solver"] for r in runs) == sorted(SOLVERS)
    families = {name: cls.family for name, cls in SOLVERS.items()}
    for row in runs:
        assert row["status"] == "completed", row["error"]
        assert row["experiment"] == "smoke" and row["preset"] == "smoke"
        assert row["steps_done"] == row["meta_steps"] == 4
        # percent: chance is 20%, so a fraction (<= 1) fails
        assert row["test_tasks_n"] == 8 and 5 < row["test_acc_mean"] <= 100
        assert row["test_acc_ci95"] > 0 and 5 < row["final_val_acc"] <= 100
        assert row["wall_time_s"] > 0 and row["ms_per_step"] > 0 and row["peak_memory_mb"] > 0
        assert row["device"].startswith("cpu") and row["bn"] == "batch"
        assert row["family"] == families[row["solver"]]
        assert json.loads(row["config_json"])["seed"] == row["seed"]
        assert (cwd / "outputs" / "smoke" / row["checkpoint"]).is_file()
    curves = ds.dataset(cwd / "outputs" / "smoke" / "curves").to_table()
    assert curves.num_rows == 2 * len(SOLVERS)  # evaluations at steps 2 and 4
    imaml = next(r for r in runs if r["solver"] == "imaml")
    assert (imaml["imaml_lam"], imaml["imaml_cg_steps"]) == (2.0, 5)
    assert next(r for r in runs if r["solver"] == "neumann")["neumann_terms"] == 3
    assert set(CURVE_METRICS) <= set(curves.column_names)
    assert sorted(set(curves.column("step").to_pylist())) == [2, 4]
    tasks = ds.dataset(cwd / "outputs" / "smoke" / "tasks").to_table()
    assert tasks.num_rows == 8 * len(SOLVERS)  # every run's 8 test tasks
    assert len(set(tasks.column("task_key").to_pylist())) == 8  # the same 8 for all


@pytest.mark.ray
@pytest.mark.slow
def test_report_reads_the_store(smoke_run) -> None:
    cwd, _ = smoke_run
    proc = run_main("report", "-e", "smoke", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    for word in ("maml", "fomaml", "second-order", "first-order", "completed", "±"):
        assert word in proc.stdout
    assert "5-way 1-shot, smoke" in proc.stdout  # grouped by setting
    assert (cwd / "outputs" / "smoke" / "summary.parquet").is_file()
    as_json = run_main("report", "-e", "smoke", "--format", "json", cwd=cwd)
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert sorted(r["solver"] for r in rows) == sorted(SOLVERS)
    assert all(r["completed"] == 1 and r["ci_over"] == "test tasks" for r in rows)
    per_run = run_main("report", "-e", "smoke", "--runs", cwd=cwd)
    assert per_run.returncode == 0 and "per run" in per_run.stdout
    newest = run_main("report", cwd=cwd)  # no argument: the newest experiment
    assert newest.returncode == 0 and "fomaml" in newest.stdout
    by_path = run_main("report", "-e", str(cwd / "outputs" / "smoke"), cwd=Path("/"))
    assert by_path.returncode == 0 and "fomaml" in by_path.stdout


@pytest.mark.ray
@pytest.mark.slow
def test_compare_takes_the_experiment_as_everywhere_and_the_old_way(smoke_run) -> None:
    cwd, _ = smoke_run
    new = run_main("compare", "fomaml", "maml", "-e", "smoke", "--format", "json", cwd=cwd)
    assert new.returncode == 0 and new.stderr == "", new.stderr
    (row,) = json.loads(new.stdout)
    assert (row["a_solver"], row["b_solver"]) == ("fomaml", "maml")
    old = run_main("compare", "smoke", "fomaml", "maml", "--format", "json", cwd=cwd)
    assert old.returncode == 0 and old.stdout == new.stdout
    (line,) = old.stderr.strip().splitlines()
    assert line.startswith("raybench: warning: ") and "deprecated" in line and "-e" in line


@pytest.mark.ray
@pytest.mark.slow
def test_rerun_skips_stored_runs_and_never_duplicates(smoke_run) -> None:
    cwd, _ = smoke_run
    proc = cli("run", "--preset", "smoke", "--solvers", "fomaml", "--no-report", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stdout
    assert "ray:" not in proc.stdout  # nothing to train: no Ray started for it
    runs = ds.dataset(cwd / "outputs" / "smoke" / "runs").to_table()
    assert runs.num_rows == len(SOLVERS)


@pytest.mark.slow
def test_python_dash_m_and_overrides(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "raybench", "run", "--preset", "smoke", "--solvers", "fomaml",
         "--steps", "2", "--set", "inner_lr=0.2", "--set", "eval_every=1", "-e", "custom",
         "--backend", "inline", "--no-report"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = ds.dataset(tmp_path / "outputs" / "custom" / "runs").to_table().to_pylist()[0]
    assert (row["meta_steps"], row["inner_lr"], row["eval_every"]) == (2, 0.2, 1)


def test_help_is_complete(tmp_path: Path) -> None:
    top = cli("-h", cwd=tmp_path)
    assert top.returncode == 0
    for command in ("run", "report", "data", "solvers", "settings"):
        assert command in top.stdout
        sub = cli(*command.split(), "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "Usage" in sub.stdout
    run_help = cli("run", "--help", cwd=tmp_path).stdout
    for option in ("--solvers", "--preset", "--set", "--seeds", "--out", "--data-dir"):
        assert option in run_help


def test_solvers_and_settings_listings(tmp_path: Path) -> None:
    solvers = run_main("solvers", cwd=tmp_path)
    assert solvers.returncode == 0
    assert "maml" in solvers.stdout and "second-order" in solvers.stdout
    settings = run_main("settings", "--preset", "smoke", cwd=tmp_path)
    assert settings.returncode == 0 and "inner_lr" in settings.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "--set", "inner_lr=-1"], ["inner_lr", "> 0"]),
        (["run", "--set", "inner_lr"], ["key=value"]),
        (["run", "--solvers", "mamll"], ["unknown solver 'mamll'", "did you mean 'maml'"]),
        (["run", "--preset", "huge"], ["unknown preset", "presets: paper, smoke, quick"]),
        (["run", "--seeds", "0"], ["--seeds"]),
        (["run", "--bogus"], ["--bogus"]),
        (["report", "-e", "nothing-here"], ["no experiment 'nothing-here'"]),
        (["run", "--solvers", "fomaml", "--set", "imaml.lam=0"], ["imaml.lam", "> 0"]),
        (["sweep", "--solvers", "fomaml", "--set", "imaml.lam=0"], ["imaml.lam", "> 0"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    one_line_error(run_main(*args, cwd=tmp_path), *words)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.parquet"))


def test_missing_data_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {
        "RAYBENCH_DATA": str(empty),
        "RAYBENCH_CACHE": str(tmp_path / "cache"),
        "RAYBENCH_OMNIGLOT_MIRROR": "http://127.0.0.1:9",
    }
    proc = cli("run", "--preset", "smoke", "--solvers", "fomaml", cwd=tmp_path, env=env)
    one_line_error(proc, "RAYBENCH_DATA", "--data-dir")
