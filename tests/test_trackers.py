"""Experiment trackers: runs and sweep trials logged to a real local MLflow store and to
TensorBoard event files, read back with MLflow's client and TensorBoard's reader."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from cli_checks import run_main
from rich.console import Console

from raybench.execution.progress import RunProgress
from raybench.results import ExperimentStore
from raybench.solvers import make_config
from raybench.trackers import TrackedStore, Trackers, quiet_libraries, tracker_spec

RAYBENCH = Path(sys.executable).parent / "raybench"
TINY = [
    *("--preset", "smoke", "--backend", "inline", "--no-report"),
    *("--set", "val_tasks=2", "--set", "test_tasks=4"),
]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAYBENCH), *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )


def mlflow_client(uri: str):
    with quiet_libraries():
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=uri)


def mlflow_runs(db: Path, experiment: str) -> list:
    client = mlflow_client(f"sqlite:///{db}")
    with quiet_libraries():
        found = client.get_experiment_by_name(experiment)
        assert found is not None, f"no MLflow experiment {experiment!r} in {db}"
        return client.search_runs([found.experiment_id], max_results=1000)


def history(db: Path, mlflow_run_id: str, key: str) -> list[tuple[int, float]]:
    with quiet_libraries():
        points = mlflow_client(f"sqlite:///{db}").get_metric_history(mlflow_run_id, key)
    return sorted((m.step, m.value) for m in points)


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return sorted((e.step, e.value) for e in events.Scalars(tag))


def same_points(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    """The same meta-steps and values (TensorBoard keeps float32)."""
    return [s for s, _ in got] == [s for s, _ in expected] and [v for _, v in got] == (
        pytest.approx([v for _, v in expected], rel=1e-6)
    )


def stored_curve(exp: Path, run_id: str, column: str) -> list[tuple[int, float]]:
    rows = ds.dataset(exp / "curves" / f"{run_id}.parquet").to_table().to_pylist()
    return sorted((r["step"], r[column]) for r in rows if r[column] is not None)


@pytest.mark.slow
def test_runs_logged_to_mlflow_and_tensorboard_from_the_store(tmp_path: Path) -> None:
    args = ["run", "--solvers", "fomaml,reptile", *TINY, "-e", "trk",
            "--tracker", "mlflow", "--tracker", "tensorboard"]  # fmt: skip
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stderr
    exp = tmp_path / "outputs" / "trk"
    stored = {r["run_id"]: r for r in ds.dataset(exp / "runs").to_table().to_pylist()}
    assert len(stored) == 2

    runs = mlflow_runs(exp / "mlflow.db", "trk")
    assert sorted(r.data.tags["raybench.run_id"] for r in runs) == sorted(stored)
    for logged in runs:
        row = stored[logged.data.tags["raybench.run_id"]]
        config = json.loads(row["config_json"])
        assert logged.info.status == "FINISHED" and logged.info.run_name == row["run_id"]
        assert logged.data.tags["raybench.solver"] == row["solver"]
        assert logged.data.tags["raybench.status"] == "completed"
        assert logged.data.params["inner_lr"] == str(config["inner_lr"])
        assert logged.data.params["seed"] == "0" and logged.data.params["preset"] == "smoke"
        assert logged.data.metrics["results/test_acc_mean"] == pytest.approx(row["test_acc_mean"])
        assert logged.data.metrics["results/final_val_acc"] == pytest.approx(row["final_val_acc"])
        # curves keyed by meta-step, the values stored in Parquet
        expected = stored_curve(exp, row["run_id"], "val_query_acc_post")
        assert [s for s, _ in expected] == [2, 4]
        got = history(exp / "mlflow.db", logged.info.run_id, "curves/val_query_acc_post")
        assert same_points(got, expected), (got, expected)
        loss = stored_curve(exp, row["run_id"], "train_query_loss_post")
        logged_loss = history(exp / "mlflow.db", logged.info.run_id, "curves/train_query_loss_post")
        assert loss and same_points(logged_loss, loss)
        # the same in TensorBoard's event files
        board = exp / "tensorboard" / row["run_id"]
        assert same_points(scalars(board, "curves/val_query_acc_post"), expected)
        final = [(row["steps_done"], row["test_acc_mean"])]
        assert same_points(scalars(board, "results/test_acc_mean"), final)

    # the same command again: the runs are stored, so skipped, and logged only once
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "skipped" in again.stdout, again.stderr[-2000:]
    assert len(mlflow_runs(exp / "mlflow.db", "trk")) == 2
    for run_id in stored:
        assert len(list((exp / "tensorboard" / run_id).glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_stored_runs_are_logged_when_a_tracker_is_added_later(tmp_path: Path) -> None:
    """A finished experiment's command with --tracker fills the tracker from the store,
    through the Python API as through the CLI."""
    import raybench

    first = cli("run", "--solvers", "fomaml", *TINY, "-e", "late", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    exp = tmp_path / "outputs" / "late"
    assert not (exp / "mlflow.db").exists()
    result = raybench.run(
        "fomaml", preset="smoke", backend="inline", experiment="late", out=tmp_path / "outputs",
        settings={"val_tasks": 2, "test_tasks": 4}, tracker="mlflow", console=Console(quiet=True),
    )  # fmt: skip
    assert list(result.ran.status) == ["skipped"]
    (logged,) = mlflow_runs(exp / "mlflow.db", "late")
    (row,) = ds.dataset(exp / "runs").to_table().to_pylist()
    assert logged.data.tags["raybench.run_id"] == row["run_id"]
    assert logged.data.metrics["results/test_acc_mean"] == pytest.approx(row["test_acc_mean"])


class Exploding:
    """A tracker that fails on its first run, as an unreachable server would."""

    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def log_run(self, run) -> bool:
        self.calls += 1
        raise ConnectionError("tracking server unreachable")

    def close(self) -> None:
        pass


def test_a_failing_tracker_warns_once_and_every_run_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stores import run_result

    tracker = Exploding()
    store = TrackedStore(ExperimentStore(tmp_path / "exp"), Trackers([tracker]))
    for seed in range(3):
        store.write_run(run_result("fomaml", seed, None))
    assert len(ExperimentStore(tmp_path / "exp").files("runs")) == 3
    assert tracker.calls == 1  # left out after its failure
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: warning: tracker exploding failed")
    assert "unreachable" in lines[0] and "stored" in lines[0]


@pytest.mark.slow
def test_an_unusable_tracking_store_never_fails_a_run(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-database.db"
    bad.write_text("this is not an SQLite file\n" * 100)
    proc = cli(
        "run", "--solvers", "fomaml", *TINY, "-e", "bad",
        "--tracker", "mlflow", "--tracker-uri", f"sqlite:///{bad}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = ds.dataset(tmp_path / "outputs" / "bad" / "runs").to_table().to_pylist()
    assert row["status"] == "completed"
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "tracker mlflow failed" in warnings[0], proc.stderr


@pytest.mark.parametrize(
    ("args", "env_module", "words"),
    [
        (["--tracker", "mlflow"], "mlflow", ["--tracker mlflow", "pip install 'raybench[mlflow]'"]),
        (["--tracker", "tensorboard"], "tensorboardX", ["pip install 'raybench[tensorboard]'"]),
        (["--tracker", "wandb"], None, ["unknown tracker 'wandb'", "mlflow, tensorboard"]),
        (["--tracker-uri", "sqlite:///x.db"], None, ["--tracker mlflow"]),
    ],
)
def test_tracker_options_fail_in_one_line_before_anything_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env_module: str | None,
    words: list[str],
) -> None:
    """Through the entry point in this process, the missing package hidden from imports."""
    if env_module:
        monkeypatch.setitem(sys.modules, env_module, None)  # `import` fails, as uninstalled
    for command in (["run", "--solvers", "fomaml", *TINY], ["sweep", "--preset", "smoke"]):
        proc = run_main(*command, *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("raybench: error: "), proc.stderr
        for word in words:
            assert word in lines[0]
        assert not (tmp_path / "outputs").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_trials_logged_by_meta_step_through_tunes_callbacks(tmp_path: Path) -> None:
    proc = cli(
        "sweep", "--solvers", "fomaml", "--preset", "smoke", "--trials", "2", "--steps", "4",
        "--no-final", "--no-report", "-e", "swt", "--tracker", "mlflow",
        "--tracker", "tensorboard", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stderr
    exp = tmp_path / "outputs" / "swt"
    trials = ds.dataset(exp / "trials").to_table().to_pylist()
    assert len(trials) == 2
    logged = mlflow_runs(exp / "mlflow.db", "swt")
    assert len(logged) == 2
    assert {r.data.tags["raybench.kind"] for r in logged} == {"trial"}
    assert {r.data.tags["raybench.solver"] for r in logged} == {"fomaml"}
    stored = sorted(
        tuple((h["step"], h["val_acc"]) for h in json.loads(t["history_json"])) for t in trials
    )
    mlflow_histories = sorted(
        tuple(history(exp / "mlflow.db", r.info.run_id, "val_acc")) for r in logged
    )
    assert len(mlflow_histories) == len(stored)
    for got, expected in zip(mlflow_histories, stored, strict=True):
        assert same_points(list(got), list(expected)), (got, expected)
    assert all(step in (2, 4) for h in stored for step, _ in h)  # meta-steps, not iterations
    for run in logged:  # the sampled parameters are the trial's settings
        assert math.isfinite(float(run.data.params["inner_lr"]))
    boards = sorted((exp / "tune" / "fomaml").glob("*/events.out.tfevents.*"))
    assert len(boards) == 2
    board_histories = sorted(tuple(scalars(b.parent, "ray/tune/val_acc")) for b in boards)
    for got, expected in zip(board_histories, stored, strict=True):
        assert same_points(list(got), list(expected)), (got, expected)


def test_progress_rows_name_the_studied_value() -> None:
    console = Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115
    progress = RunProgress(console, 2, ticker=False, label_settings=("outer_lr", "imaml.lam"))
    config = make_config("imaml", "smoke", {"outer_lr": 0.01, "imaml.lam": 0.5, "seed": 2})
    assert progress.label(config) == "imaml outer_lr=0.01 lam=0.5 seed 2"
    plain = RunProgress(console, 1, ticker=False)
    assert plain.label(config) == "imaml seed 2"
    console.file.close()


def test_tracker_spec_parses_repeated_and_comma_separated_names() -> None:
    assert tracker_spec(None) is None and tracker_spec([]) is None
    spec = tracker_spec(["mlflow,tensorboard", "mlflow"], "sqlite:///x.db", check=False)
    assert spec is not None and spec.names == ("mlflow", "tensorboard")
    assert spec.uri == "sqlite:///x.db"
