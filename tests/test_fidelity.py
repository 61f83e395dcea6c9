"""Meta-gradient fidelity: the study's identities, its Parquet table, checkpoints, the CLI."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import torch
from cli_checks import run_main

from raybench.cli import main
from raybench.data import OmniglotImages
from raybench.errors import RaybenchError
from raybench.measurements.fidelity import (
    FIDELITY_SCHEMA,
    FidelityStudy,
    checkpoint_point,
    init_point,
    run_points,
)
from raybench.models import build_model
from raybench.results import ExperimentStore
from raybench.results.store import save_checkpoint
from raybench.solvers import make_config
from raybench.train import RunResult, train

RAYBENCH = Path(sys.executable).parent / "raybench"
# damping keeps iMAML's system positive definite at this tiny model's init, so CG runs all
# its iterations (on an indefinite one it stops at the first negative curvature)
TINY = {"hidden": 8, "dtype": "float64", "imaml.damping": 50.0}
SWEEPS = {
    "imaml": ("cg_steps", (1, 3, 10)),
    "neumann": ("terms", (0, 2)),
    "penalty": ("lam", (0.0, 0.1)),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Speed only: on a shared two-core machine two torch threads can be far slower."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def study(omniglot: OmniglotImages) -> FidelityStudy:
    return FidelityStudy(
        omniglot,
        preset="smoke",
        overrides=TINY,
        solvers=["maml", "fomaml", "reptile", "neumann", "penalty", "imaml", "finetune-head"],
        sweeps=SWEEPS,
        n_tasks=4,
    )


@pytest.fixture(scope="module")
def rows(study: FidelityStudy) -> list[dict]:
    return study.run(init_point(study.reference), experiment="t").to_pylist()


def one(rows: list[dict], solver: str, value: float | None = None) -> dict:
    (row,) = [r for r in rows if r["solver"] == solver and r["knob_value"] == value]
    return row


def test_one_row_per_solver_and_knob_value_with_the_schema(study, rows) -> None:
    assert study.skipped == ["finetune-head"]  # no meta-gradient
    keys = sorted((r["solver"], r["knob"], r["knob_value"]) for r in rows)
    assert keys == sorted(
        [("maml", None, None), ("fomaml", None, None), ("reptile", None, None)]
        + [("imaml", "cg_steps", v) for v in (1.0, 3.0, 10.0)]
        + [("neumann", "terms", v) for v in (0.0, 2.0)]
        + [("penalty", "lam", v) for v in (0.0, 0.1)]
    )
    for row in rows:
        assert set(row) == set(FIDELITY_SCHEMA.names)
        assert row["point"] == "init-s0" and row["point_kind"] == "init" and row["seed"] == 0
        assert (row["tasks"], row["dtype"], row["hidden"], row["preset"]) == (
            4,
            "float64",
            8,
            "smoke",
        )
        assert row["time_ms"] > 0 and row["maml_grad_norm"] > 0
        assert all(math.isfinite(row[k]) for k in ("cosine", "rel_error", "norm_ratio"))
        assert row["pseudo_gradient"] == (row["solver"] == "reptile")
    assert len({r["study_id"] for r in rows}) == 1


def test_maml_against_itself_is_exact(rows) -> None:
    maml = one(rows, "maml")
    assert abs(maml["cosine"] - 1) <= 1e-12 and maml["rel_error"] <= 1e-12
    assert maml["norm_ratio"] == pytest.approx(1, abs=1e-12)


def test_penalty_without_penalty_is_maml(rows) -> None:
    penalty = one(rows, "penalty", 0.0)
    assert abs(penalty["cosine"] - 1) <= 1e-6 and penalty["rel_error"] <= 1e-6
    assert one(rows, "penalty", 0.1)["rel_error"] > 1e-3


def test_neumann_without_terms_is_fomaml(rows) -> None:
    neumann, fomaml = one(rows, "neumann", 0.0), one(rows, "fomaml")
    for key in ("cosine", "rel_error", "norm_ratio"):
        assert neumann[key] == pytest.approx(fomaml[key], rel=1e-9, abs=1e-12)
    assert one(rows, "neumann", 2.0)["rel_error"] != pytest.approx(fomaml["rel_error"])


def test_imaml_error_changes_with_cg_steps(rows) -> None:
    errors = [one(rows, "imaml", v)["rel_error"] for v in (1.0, 3.0, 10.0)]
    assert len({round(e, 9) for e in errors}) == 3


def test_implicit_rows_separate_the_solver_s_error_from_the_objective_s(rows) -> None:
    """Each implicit row compares the solver with the exact solution of its own system
    (MINRES to 1e-10 here) and that solution with MAML: the second does not depend on how
    the system is solved, the first shrinks as the solver works harder."""
    imaml = [one(rows, "imaml", v) for v in (1.0, 3.0, 10.0)]
    neumann = [one(rows, "neumann", v) for v in (0.0, 2.0)]
    for group in (imaml, neumann):
        assert {r["exact_method"] for r in group} == {"minres"}
        assert all(r["exact_residual"] < 1e-8 for r in group)
        assert len({r["exact_rel_error"] for r in group}) == 1  # one system, one mismatch
        assert len({r["exact_cosine"] for r in group}) == 1
        assert all(r["diag_tasks"] == 4 for r in group)
        # the measured residual ||A g - b|| / ||b|| falls as the solver works harder, and
        # one CG step (or the series' first term) leaves a visible one (measured: 0.22)
        residuals = [r["diag_solve_residual"] for r in group]
        assert all(a > b for a, b in itertools.pairwise(residuals)) and residuals[0] > 0.1
    assert imaml[-1]["diag_solve_residual"] < 1e-6  # 10 CG steps solve it (measured: 5e-8)
    errors = [r["vs_exact_rel_error"] for r in imaml]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6  # CG converges
    assert [r["diag_negative_curvature"] for r in imaml] == [0, 0, 0]  # damping: definite
    assert all(r["negative_curvature_first"] is None for r in imaml)
    for solver in ("maml", "fomaml", "penalty", "reptile"):
        assert all(r["exact_method"] is None and r["diag_tasks"] is None
                   for r in rows if r["solver"] == solver)  # fmt: skip


def test_an_indefinite_imaml_row_says_where_cg_met_negative_curvature(
    omniglot: OmniglotImages,
) -> None:
    from rich.console import Console

    from raybench.report.measurements import fidelity_tables

    study = FidelityStudy(
        omniglot,
        preset="smoke",
        overrides={"hidden": 3, "dtype": "float64", "imaml.lam": 0.05},  # dense: 326 params
        solvers=["maml", "imaml"],
        sweeps={"imaml": ("cg_steps", (20,))},
        n_tasks=2,
    )
    table = study.run(init_point(study.reference))
    row = one(table.to_pylist(), "imaml", 20.0)
    assert row["diag_convexity"] < 0 and row["diag_negative_curvature"] >= 1
    assert 1 <= row["negative_curvature_first"] <= row["negative_curvature_last"] <= 20
    assert row["exact_method"] == "dense" and row["exact_residual"] < 1e-8  # definite or not
    assert row["exact_hessian_min"] < 0
    assert row["vs_exact_rel_error"] > 1e-3  # truncated CG is not that solution
    console = Console(width=300, record=True)
    for rendered in fidelity_tables(table):
        console.print(rendered)
    text = console.export_text()
    assert "CG met negative curvature on" in text and "indefinite" in text


def test_checkpoint_points_and_their_shapes(omniglot: OmniglotImages, tmp_path: Path) -> None:
    small = FidelityStudy(
        omniglot, preset="smoke", overrides=TINY, solvers=["maml", "fomaml"], n_tasks=2
    )
    params = build_model(5, 8).init_params(7, torch.device("cpu"), torch.float32)
    save_checkpoint(tmp_path / "trained.pt", {k: v * 1.1 for k, v in params.items()})
    point = checkpoint_point(tmp_path / "trained.pt")
    table = small.run(point).to_pylist()
    assert [r["solver"] for r in table] == ["maml", "fomaml"]
    assert {r["point"] for r in table} == {"ckpt-trained"}
    assert {r["point_kind"] for r in table} == {"checkpoint"}
    assert table[0]["rel_error"] <= 1e-12 and table[1]["rel_error"] > 0
    assert small.study_id(point) != small.study_id(init_point(small.reference))

    wrong = build_model(5, 16).init_params(0, torch.device("cpu"), torch.float32)
    save_checkpoint(tmp_path / "wide.pt", wrong)
    with pytest.raises(RaybenchError, match="hidden=16"):
        small.run(checkpoint_point(tmp_path / "wide.pt"))
    with pytest.raises(RaybenchError, match="not found"):
        checkpoint_point(tmp_path / "missing.pt")


def test_a_run_in_progress_is_a_checkpoint_point(omniglot: OmniglotImages, tmp_path: Path) -> None:
    """The training state a run saves at each evaluation point: its meta-parameters."""
    config = make_config("maml", "smoke", {**TINY, "meta_steps": 2, "eval_every": 2})
    state = tmp_path / "progress" / f"{config.run_id}.pt"
    result = train(config, omniglot, resume=state, test=False)
    point = checkpoint_point(state)
    assert "step 2 of a run in progress" in point.source
    for name, p in result.params.items():
        assert torch.equal(point.params[name], p)


def write_source_experiment(root: Path) -> ExperimentStore:
    """A stored meta-learning run and a stored baseline run, each with its checkpoint."""
    store = ExperimentStore(root)
    config = make_config("maml", "smoke", {"hidden": 8})
    params = build_model(5, 8).init_params(1, torch.device("cpu"), torch.float32)
    store.write_run(RunResult(config=config, family="second-order", steps_done=4, params=params))
    baseline = dict(params, **{"head.weight": torch.zeros(4400, 8), "head.bias": torch.zeros(4400)})
    config = make_config("finetune-head", "smoke", {"hidden": 8})
    store.write_run(RunResult(config=config, family="baseline", steps_done=4, params=baseline))
    return store


def test_run_points_skip_baselines(tmp_path: Path) -> None:
    points, notes = run_points(write_source_experiment(tmp_path / "src"))
    assert [p.kind for p in points] == ["run"] and points[0].name.startswith("maml-s0-")
    assert len(notes) == 1 and "finetune-head" in notes[0] and "baseline" in notes[0]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAYBENCH), *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_cli_end_to_end_and_report(omniglot: OmniglotImages, tmp_path: Path) -> None:
    write_source_experiment(tmp_path / "outputs" / "src")
    proc = cli(
        "fidelity", "--from", "src", "--preset", "smoke", "--set", "hidden=8", "--tasks", "2",
        "--solvers", "maml,fomaml,neumann,finetune-head", "--sweep", "neumann.terms=0,1",
        "-e", "fid", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "skipped solvers finetune-head" in proc.stdout
    assert "skipped point finetune-head" in proc.stdout
    assert "Meta-gradient fidelity vs MAML" in proc.stdout
    # The header's count of meta-gradients is the body's: 4 cases and exact MAML per point.
    header = re.search(r"(\d+) point\(s\) x (\d+) meta-gradients", proc.stdout)
    body = [int(n) for n in re.findall(r"^  \S+: (\d+) meta-gradients$", proc.stdout, re.M)]
    assert header is not None and (int(header[1]), int(header[2])) == (2, 5), proc.stdout
    assert body == [5, 5]
    files = sorted((tmp_path / "outputs" / "fid" / "fidelity").glob("*.parquet"))
    assert [f.name.split("-")[0] for f in files] == ["init", "maml"]
    rows = ds.dataset(files).to_table().to_pylist()
    assert len(rows) == 2 * 4  # (init, run) x (maml, fomaml, neumann 0, neumann 1)
    assert {r["experiment"] for r in rows} == {"fid"}
    assert {(r["solver"], r["knob_value"]) for r in rows if r["solver"] == "neumann"} == {
        ("neumann", 0.0),
        ("neumann", 1.0),
    }

    report = run_main("report", "-e", "fid", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("Meta-gradient fidelity vs MAML") == 2
    assert "neumann" in report.stdout and "init-s0" in report.stdout


def test_bad_source_experiment_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = run_main("fidelity", "--preset", "smoke", "--from", "nothing-here", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("raybench: error: no experiment 'nothing-here'")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sweep", "imaml.cg_steps=0,5"], ["imaml.cg_steps", ">= 1"]),
        (["--sweep", "imaml.cg=1"], ["unknown option 'imaml.cg'"]),
        (["--solvers", "finetune-head"], ["no meta-solver"]),
        (["--no-init"], ["nothing to compare at"]),
        (["--checkpoint", "missing.pt"], ["not found"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    """Through the console script's own entry point, in this process (no torch start-up)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fidelity", "--preset", "smoke", "--out", str(tmp_path / "outputs"), *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: error: ")
    assert all(word in lines[0] for word in words), lines
    assert not (tmp_path / "outputs").exists()
