"""Presets of the benchmark matrix, `run --matrix`, and the sensitivity study."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from cli_checks import run_main

from raybench.config import MATRIX_PRESETS, PRESETS
from raybench.errors import RaybenchError
from raybench.measurements.sensitivity import setting_key
from raybench.report.measurements import sparkline
from raybench.solvers import make_config

RAYBENCH = Path(sys.executable).parent / "raybench"
SMALL = [
    *("--set", "val_tasks=2", "--set", "test_tasks=4", "--set", "meta_batch=1"),
    *("--set", "hidden=8", "--set", "eval_every=2", "--steps", "2", "--backend", "inline"),
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(RAYBENCH), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def test_matrix_presets_are_the_standard_task_sizes() -> None:
    sizes = {p: (make_config("maml", p).ways, make_config("maml", p).shots) for p in MATRIX_PRESETS}
    assert sizes == {"paper": (5, 1), "5w5s": (5, 5), "20w1s": (20, 1), "20w5s": (20, 5)}
    for preset in ("5w5s", "20w1s", "20w5s"):  # the report's other settings unchanged
        config = make_config("maml", preset)
        assert (config.inner_lr, config.inner_steps, config.meta_batch) == (0.01, 5, 16)


def test_literature_presets_follow_the_maml_paper() -> None:
    five = make_config("maml", "literature-5w1s")
    assert (five.inner_lr, five.inner_steps, five.adapt_steps_eval, five.meta_batch) == (
        0.4,
        1,
        3,
        32,
    )
    assert (five.query, five.meta_steps, five.test_tasks) == (1, 60000, 600)
    twenty = make_config("maml", "literature-20w5s")
    assert (twenty.ways, twenty.shots, twenty.inner_lr, twenty.inner_steps) == (20, 5, 0.1, 5)
    assert twenty.meta_batch == 16
    assert {p for p in PRESETS if p.startswith("literature-")} == {
        "literature-5w1s", "literature-5w5s", "literature-20w1s", "literature-20w5s",
    }  # fmt: skip


def test_setting_keys() -> None:
    assert setting_key("reptile", "outer_lr") == "outer_lr"
    assert setting_key("imaml", "lam") == "imaml.lam"
    assert setting_key("imaml", "imaml.cg_steps") == "imaml.cg_steps"
    with pytest.raises(RaybenchError, match="did you mean 'outer_lr'"):
        setting_key("reptile", "outer_l")
    with pytest.raises(RaybenchError, match="not an option of 'maml'"):
        setting_key("maml", "imaml.lam")
    assert sparkline([0.0, 50.0, 100.0]) == "▁▅█"  # accuracies in %


@pytest.mark.slow
def test_run_matrix_covers_every_setting(tmp_path: Path) -> None:
    proc = cli("run", "--matrix", "--solvers", "fomaml", "--seeds", "1", *SMALL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = ds.dataset(tmp_path / "outputs" / "matrix" / "runs").to_table().to_pylist()
    assert sorted((r["preset"], r["ways"], r["shots"]) for r in rows) == [
        ("20w1s", 20, 1), ("20w5s", 20, 5), ("5w5s", 5, 5), ("paper", 5, 1),
    ]  # fmt: skip
    assert all(r["status"] == "completed" for r in rows)


@pytest.mark.slow
def test_sensitivity_runs_each_value_and_summarises(tmp_path: Path) -> None:
    proc = cli(
        "sensitivity", "--solver", "reptile", "--param", "outer_lr", "--values", "0.001,0.1",
        "--seeds", "2", "--preset", "smoke", "--backend", "inline", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    exp = tmp_path / "outputs" / "study-reptile-outer_lr"
    runs = ds.dataset(exp / "runs").to_table().to_pylist()
    assert sorted((r["outer_lr"], r["seed"]) for r in runs) == [
        (0.001, 0), (0.001, 1), (0.1, 0), (0.1, 1),
    ]  # fmt: skip
    assert {r["source"] for r in runs} == {"study"}
    summary = pq.read_table(exp / "study.parquet").to_pylist()
    assert [(s["value"], s["runs"]) for s in summary] == [("0.001", 2), ("0.1", 2)]
    for s in summary:
        expected = sum(r["test_acc_mean"] for r in runs if str(r["outer_lr"]) == s["value"]) / 2
        assert s["test_acc_mean"] == pytest.approx(expected)
    assert "Sensitivity of reptile to outer_lr" in proc.stdout


def test_sensitivity_bad_param_is_one_line(tmp_path: Path) -> None:
    proc = run_main(
        "sensitivity", "--solver", "reptile", "--param", "outer", "--values", "1", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown setting" in proc.stderr


def test_the_old_name_study_still_works_with_one_deprecation_line(tmp_path: Path) -> None:
    """`raybench study` is `raybench sensitivity` for one release: the same options, the
    same result, one line on stderr saying the new name; hidden from the command list."""
    args = ("--solver", "reptile", "--param", "outer", "--values", "1")
    old = run_main("study", *args, cwd=tmp_path)
    new = run_main("sensitivity", *args, cwd=tmp_path)
    assert old.returncode == new.returncode == 2
    first, *rest = old.stderr.strip().splitlines()
    assert "`raybench study` is now `raybench sensitivity`" in first
    assert rest == new.stderr.strip().splitlines()  # then exactly what the new name says
    assert "--param" in run_main("study", "-h", cwd=tmp_path).stdout
    listing = run_main("-h", cwd=tmp_path).stdout
    commands = [line.split()[1] for line in listing.splitlines() if line.startswith("│ ")]
    assert "sensitivity" in commands and "study" not in commands  # hidden
