"""The Python API: ``import raybench`` stays cheap; an experiment's tables as DataFrames;
the report table and the paired comparison as DataFrames; runs from Python on real
Omniglot, through the same code path as ``raybench run``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_checks import API_NEEDS
from rich.console import Console
from stores import comparison_store, write_scaling

import raybench
from raybench import api
from raybench.errors import ParameterError, RaybenchError
from raybench.report.records import SUMMARY_SCHEMA, aggregate_runs
from raybench.report.significance import compare
from raybench.results.schema import RUNS_SCHEMA
from raybench.solvers import make_config


def test_import_is_cheap_and_the_api_is_there() -> None:
    code = (
        "import sys, raybench; "
        "heavy = ('torch', 'ray', 'pandas', 'pyarrow', 'optuna', 'raybench.api'); "
        "print([m for m in heavy if m in sys.modules]); "
        "print(callable(raybench.load), 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "True False"]
    assert {"load", "run", "summary", "compare", "Experiment"} <= set(dir(raybench))
    with pytest.raises(AttributeError):
        raybench.nothing  # noqa: B018


def test_load_gives_every_table_as_a_dataframe(tmp_path: Path) -> None:
    store, _ = comparison_store(tmp_path / "exp")
    write_scaling(store)
    exp = raybench.load("exp", out=tmp_path)
    assert exp.name == "exp" and exp.root == store.root
    runs = store.read("runs")
    assert isinstance(exp.runs, pd.DataFrame) and len(exp.runs) == runs.num_rows == 13
    assert sorted(exp.runs.run_id) == sorted(runs.column("run_id").to_pylist())
    assert set(RUNS_SCHEMA.names) <= set(exp.runs.columns)
    assert len(exp.curves) == 4 * 12  # 4 evaluations of each run that has curves
    assert len(exp.tasks) == 12 * 200 and exp.tasks.query_acc_post.between(0, 100).all()
    # the report's table: the same records the CLI stores as summary.parquet
    expected = aggregate_runs(runs, store.read("curves"), store.read("tasks"))
    assert list(exp.summary.columns) == SUMMARY_SCHEMA.names
    assert exp.summary.solver.tolist() == [r["solver"] for r in expected]
    tested = [r for r in expected if r["test_acc"] is not None]
    assert exp.summary.test_acc.dropna().tolist() == pytest.approx([r["test_acc"] for r in tested])
    verdicts = [r["vs_best_verdict"] for r in expected if r["vs_best_verdict"] is not None]
    assert exp.summary.vs_best_verdict.dropna().tolist() == verdicts
    assert raybench.summary(store.root).equals(exp.summary)  # by folder, the same
    # studies, and empty tables with their columns
    assert len(exp.scaling) == 6 and "verdict" in exp.scaling.columns
    assert exp.trials.empty and exp.bench.empty and exp.ran.empty


def test_compare_as_a_dataframe(tmp_path: Path) -> None:
    _, matrices = comparison_store(tmp_path / "exp")
    frame = raybench.compare("exp", "fomaml", "finetune-full", out=tmp_path)
    assert len(frame) == 1
    row = frame.iloc[0]
    expected = compare(matrices["fomaml"], matrices["finetune-full"], paired=True)
    assert row["diff"] == pytest.approx(expected.diff) and row["paired"]
    assert row["p_value"] == pytest.approx(expected.p_value)
    assert row["method"] == expected.method and row["tasks"] == 200
    assert raybench.load("exp", out=tmp_path).compare("fomaml", "finetune-full").equals(frame)
    with pytest.raises(RaybenchError, match="ambiguous"):
        raybench.compare("exp", "maml", "fomaml", out=tmp_path)


def test_newest_experiment_and_errors(tmp_path: Path) -> None:
    with pytest.raises(RaybenchError, match="no experiments"):
        raybench.load(out=tmp_path)
    comparison_store(tmp_path / "first")
    assert raybench.load(out=tmp_path).name == "first"
    with pytest.raises(RaybenchError, match="unknown solver 'mamll'"):
        raybench.run("mamll", preset="smoke", out=tmp_path, backend="inline")
    with pytest.raises(RaybenchError, match="seeds"):
        raybench.run("maml", preset="smoke", seeds=0, out=tmp_path)


@pytest.mark.slow
def test_run_from_python_is_the_cli_path(tmp_path: Path) -> None:
    """Inline, two seeds of one solver, overrides as a mapping: stored like the CLI's runs
    (same run ids), returned as DataFrames; a second call skips the stored runs."""
    console = Console(file=io.StringIO(), width=120)
    exp = raybench.run(
        ["fomaml"],
        preset="smoke",
        settings={"meta_steps": 2, "eval_every": 1},
        seeds=2,
        backend="inline",
        out=tmp_path / "outputs",
        console=console,
    )
    ids = [make_config("fomaml", "smoke", {"meta_steps": 2, "eval_every": 1, "seed": s}).run_id
           for s in (0, 1)]  # fmt: skip
    assert exp.name == "smoke" and sorted(exp.runs.run_id) == sorted(ids)
    assert exp.ran.status.tolist() == ["completed", "completed"]
    assert (exp.runs.status == "completed").all() and (exp.runs.steps_done == 2).all()
    assert len(exp.curves) == 4 and len(exp.tasks) == 2 * 8
    (row,) = exp.summary.to_dict("records")
    assert row["solver"] == "fomaml" and row["completed"] == 2 and row["ci_over"] == "seeds"
    (plan,) = (exp.root / "manifests").glob("run-*.json")
    manifest = json.loads(plan.read_text())
    assert sorted(c["seed"] for c in manifest["configs"]) == [0, 1]
    again = raybench.run(
        "fomaml", "smoke", settings=["meta_steps=2", "eval_every=1"], seeds=2,
        backend="inline", out=tmp_path / "outputs", console=console,
    )  # fmt: skip
    assert again.ran.status.tolist() == ["skipped", "skipped"]
    # the CLI's `raybench run` with the same options trains the same runs to the same numbers
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "raybench"), "run", "--solvers", "fomaml",
         "--preset", "smoke", "--set", "meta_steps=2", "--set", "eval_every=1", "--seeds", "2",
         "--backend", "inline", "--no-report", "-e", "by-cli"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    by_cli = raybench.load("by-cli", out=tmp_path / "outputs").runs
    columns = ["run_id", "status", "final_val_acc", "test_acc_mean", "test_acc_ci95"]
    assert (
        by_cli[columns].sort_values("run_id").reset_index(drop=True)
        .equals(exp.runs[columns].sort_values("run_id").reset_index(drop=True))
    )  # fmt: skip


def checked_functions() -> list:
    return [getattr(api, name) for name in api.__all__ if hasattr(getattr(api, name), "checked_by")]


def test_every_api_function_is_checked_by_its_commands_declarations() -> None:
    """Issue 46, case 7: every function of the API that a command calls checks its
    arguments (all of the API's functions but the store-level record builders)."""
    from raybench.api.parameters import declared_ranges

    names = {f.__name__ for f in checked_functions()}
    assert names == {
        "agreement", "bench", "bench_ab", "compare", "fidelity", "load", "plot", "replicate",
        "replication", "report", "run", "scaling", "sensitivity", "summary", "sweep",
    }  # fmt: skip
    assert declared_ranges("run")["max_concurrent"] == (1, 100_000)  # raybench.limits
    assert declared_ranges("bench")["rounds"] == declared_ranges("bench")["timed_steps"]


def test_a_number_below_its_flags_range_is_refused_from_python(tmp_path: Path) -> None:
    """Every keyword whose flag declares a range, one below its low end (and above its
    high end), from every checked function: a ParameterError naming the keyword, and
    nothing written, no Ray, no hang."""
    import inspect

    from raybench.api.parameters import declared_ranges

    tried = 0
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for function in checked_functions():
            command, extra = function.checked_by
            parameters = inspect.signature(function).parameters
            for keyword, (low, high) in {**declared_ranges(command), **extra}.items():
                if keyword not in parameters:
                    continue
                for value in (low - 1 if low is not None else None, (high or 0) * 2 or None):
                    if value is None:
                        continue
                    given = {**API_NEEDS.get(function.__name__, {}), keyword: value}
                    with pytest.raises(ParameterError, match=rf"^{keyword} "):
                        function(**given)
                    tried += 1
    finally:
        os.chdir(cwd)
    assert tried >= 30 and not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("function", "given", "keyword"),
    [
        ("run", {"seeds": "3"}, "seeds"),
        ("run", {"out": None}, "out"),
        ("run", {"settings": {1: 2}}, "settings"),
        ("compare", {"experiment": "x", "a": 1, "b": 2}, "a"),
        ("plot", {"dpi": "100"}, "dpi"),
        ("report", {"columns": []}, "columns"),
        ("report", {"width": -5}, "width"),
        ("sweep", {"seeds": [1, 1]}, "seeds"),
        ("sweep", {"options": {"cpus_per_trial": 2}}, "options"),
        ("replicate", {"published": "x", "seeds": 5}, "seeds"),
        ("load", {"experiment": 3}, "experiment"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_by_keyword(
    tmp_path: Path, function: str, given: dict, keyword: str
) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ParameterError, match=rf"^{keyword} "):
            getattr(api, function)(**given)
    finally:
        os.chdir(cwd)
    assert not any(tmp_path.iterdir())
