"""``raybench compare`` through its console script, on a fabricated store with per-task
results: the numbers are significance.compare's on the seeds x tasks matrices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error, run_main
from rich.console import Console
from stores import comparison_store, run_result

import raybench
from raybench.cli.reports import compare as compare_command
from raybench.errors import RaybenchError
from raybench.report.significance import compare
from raybench.results import ExperimentStore
from raybench.solvers import make_config

RAYBENCH = Path(sys.executable).parent / "raybench"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Through the entry point in this process: these commands only read a store."""
    return run_main(*args, cwd=cwd, env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("compare")
    store, matrices = comparison_store(root / "outputs" / "exp", seed=1)
    return root, store, matrices


def test_compare_json_is_the_paired_comparison(fabricated) -> None:
    cwd, _, matrices = fabricated
    proc = cli("compare", "-e", "exp", "fomaml", "finetune-full", "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    expected = compare(matrices["fomaml"], matrices["finetune-full"])
    assert row["setting"] == "5-way 1-shot, paper"
    assert (row["a_solver"], row["b_solver"]) == ("fomaml", "finetune-full")
    assert row["diff"] == pytest.approx(expected.diff)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((expected.low, expected.high))
    assert row["p_value"] == pytest.approx(expected.p_value)  # unadjusted: one pair
    assert row["df"] == pytest.approx(expected.df) and row["se"] == pytest.approx(expected.se)
    assert row["method"] == expected.method
    assert (row["tasks"], row["n_seeds_a"], row["n_seeds_b"]) == (200, 3, 3)
    assert row["a_seeds"] == [0, 1, 2]
    assert row["a_seed_means"] == pytest.approx(matrices["fomaml"].mean(1).tolist())
    assert row["b_seed_means"] == pytest.approx(matrices["finetune-full"].mean(1).tolist())
    assert row["a_mean"] - row["b_mean"] == pytest.approx(expected.diff)
    assert row["var_seeds"] == pytest.approx(expected.variance["seeds"])
    assert row["var_tasks"] == pytest.approx(expected.variance["tasks"])
    assert row["var_seeds"] + row["var_tasks"] == pytest.approx(expected.se**2)
    # swapping A and B flips the sign, nothing else
    swapped = raybench.compare(cwd / "outputs" / "exp", "finetune-full", "fomaml").iloc[0]
    assert swapped["diff"] == pytest.approx(-expected.diff)
    assert swapped["p_value"] == pytest.approx(expected.p_value)


def test_compare_rich_shows_every_detail(fabricated) -> None:
    cwd, _, matrices = fabricated
    proc = cli("compare", "-e", "exp", "fomaml", "finetune-full", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    expected = compare(matrices["fomaml"], matrices["finetune-full"])
    for seed, mean in enumerate(matrices["fomaml"].mean(1)):
        assert f"seed {seed}: {mean:.2f}" in text
    assert f"{expected.diff:+.2f} points" in text
    assert f"[{expected.low:+.2f}, {expected.high:+.2f}]" in text
    assert "unadjusted" in text and f"{expected.p_value:.3g}" in text
    assert "Satterthwaite" in text and "200 test tasks; 3 + 3 seeds" in text
    assert "Var(A − B)" in text


def test_a_solver_with_several_configurations_needs_a_fingerprint(fabricated) -> None:
    cwd, _, matrices = fabricated
    preset = make_config("maml", "paper").fingerprint()
    tuned = make_config("maml", "paper", {"inner_lr": 0.05}).fingerprint()
    line = one_line_error(cli("compare", "-e", "exp", "maml", "fomaml", cwd=cwd), "ambiguous")
    assert preset in line and tuned in line
    proc = cli("compare", "-e", "exp", tuned, preset[:6], "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert (row["a_config"], row["b_config"]) == (tuned, preset)
    assert row["a_source"] == "tuned" and "inner_lr=0.05" in row["a"]
    expected = compare(matrices["maml-tuned"], matrices["maml"])
    assert row["diff"] == pytest.approx(expected.diff)
    assert row["p_value"] == pytest.approx(expected.p_value)


def test_bad_names_are_one_line(fabricated) -> None:
    cwd, _, _ = fabricated
    one_line_error(cli("compare", "-e", "exp", "mamll", "fomaml", cwd=cwd), "mamll", "fomaml")
    for a, b, words in (
        ("fomaml", "fomaml", "same configuration"),
        ("reptile", "fomaml", "nothing to compare"),  # a failed run has no test result
    ):
        with pytest.raises(RaybenchError, match=words):
            compare_command("exp", a, b, cwd / "outputs", Console())
    with pytest.raises(RaybenchError, match="no experiment"):
        compare_command("nothing", "a", "b", cwd / "outputs", Console())


def test_compare_refuses_runs_on_different_tasks(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    accs = np.linspace(40, 90, 20)
    store.write_run(run_result("maml", 0, accs))
    other = run_result("fomaml", 0, accs)
    other.task_keys = [f"other{i}" for i in range(20)]
    store.write_run(other)
    with pytest.raises(RaybenchError, match="different test tasks"):
        compare_command("exp", "maml", "fomaml", tmp_path, Console())
