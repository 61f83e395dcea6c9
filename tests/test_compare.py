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
from raybench.report.power import detectable, seeds_needed
from raybench.report.significance import INDEPENDENT, PAIRED, compare
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
    expected = compare(matrices["fomaml"], matrices["finetune-full"], paired=True)
    assert row["paired"] is True and row["method"] == PAIRED
    assert row["why"] == (
        "seeds 0, 1, 2 shared: same initial networks and test tasks (not the training draws)"
    )
    assert row["detectable_80"] == pytest.approx(detectable(expected))
    assert row["detectable_80"] > 2 * expected.se  # what 80% power at 5% takes
    assert row["seeds_needed"] is None and row["detect"] is None  # not asked
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
    expected = compare(matrices["fomaml"], matrices["finetune-full"], paired=True)
    for seed, mean in enumerate(matrices["fomaml"].mean(1)):
        assert f"seed {seed}: {mean:.2f}" in text
    assert f"{expected.diff:+.2f} points" in text
    assert f"[{expected.low:+.2f}, {expected.high:+.2f}]" in text
    assert "unadjusted" in text and f"{expected.p_value:.3g}" in text
    assert "Satterthwaite" in text and "200 test tasks; 3 + 3 seeds" in text
    assert "Var(A − B)" in text
    assert "seed-paired" in text and "seeds 0, 1, 2 shared" in text
    assert f"detects a true difference of {detectable(expected):.2f} points" in text


def test_compare_says_how_many_seeds_a_difference_needs(fabricated) -> None:
    """``--detect``: the fewest seeds whose projected comparison has 80% power, in the
    table and the JSON, and the same through the API."""
    cwd, _, matrices = fabricated
    args = ("compare", "-e", "exp")
    tuned = make_config("maml", "paper", {"inner_lr": 0.05}).fingerprint()
    proc = cli(*args[:3], "fomaml", tuned, "--detect", "1", "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    c = compare(matrices["fomaml"], matrices["maml-tuned"], paired=True)
    needed = seeds_needed(c, 1.0)
    assert needed is not None and needed > 3
    assert row["detect"] == 1.0 and row["seeds_needed"] == needed
    proc = cli(*args[:3], "fomaml", tuned, "--detect", "1", cwd=cwd)
    assert f"{needed} seeds on each side detect 1 points" in " ".join(proc.stdout.split())
    frame = raybench.compare(cwd / "outputs" / "exp", "fomaml", tuned, detect=1.0)
    assert frame.iloc[0]["seeds_needed"] == row["seeds_needed"]
    bad = cli(*args[:3], "fomaml", tuned, "--detect", "0", cwd=cwd)
    assert bad.returncode == 2


def test_without_the_pairing_record_or_the_same_seeds_seeds_are_independent(
    tmp_path: Path,
) -> None:
    """A store made before the pairing record existed, and configurations that ran other
    seeds, are compared as independent seeds, and the comparison says why."""
    _, matrices = comparison_store(tmp_path / "old", recorded=False)
    row = raybench.compare(tmp_path / "old", "fomaml", "finetune-full").iloc[0]
    expected = compare(matrices["fomaml"], matrices["finetune-full"])
    assert not row["paired"] and row["method"] == INDEPENDENT
    assert "no pairing record" in row["why"]
    assert row["p_value"] == pytest.approx(expected.p_value)
    store = ExperimentStore(tmp_path / "mixed")
    rng = np.random.default_rng(3)
    for solver, seeds in (("maml", (0, 1, 2)), ("fomaml", (3, 4, 5))):
        for s in seeds:
            record = {"init_fingerprint": f"init-{s}", "stream_fingerprint": f"tasks-{s}"}
            store.write_run(run_result(solver, s, rng.normal(60, 10, 30), **record))
    row = raybench.compare(store.root, "maml", "fomaml").iloc[0]
    assert not row["paired"] and row["why"] == "not the same seeds (0, 1, 2 against 3, 4, 5)"


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
    expected = compare(matrices["maml-tuned"], matrices["maml"], paired=True)
    assert (
        row["why"] == "seeds 0, 1, 2 shared: same initial networks, training draws and test tasks"
    )
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
