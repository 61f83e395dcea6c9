"""Figures from a small stored experiment, written without training: every figure kind is
rendered, read back as a PNG of the fixed size; the skip path, old stores and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from raybench.report.plots import PIXELS, plot_experiment, run_groups
from raybench.results import ExperimentStore
from raybench.results.store import write_table
from raybench.solvers import METRICS, make_config
from raybench.studies.fidelity import FIDELITY_SCHEMA
from raybench.studies.scaling import SCALING_SCHEMA
from raybench.train import RunResult

RAYBENCH = Path(sys.executable).parent / "raybench"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
STEPS = (10, 20, 30, 40, 50)

RUN_FIGURES = {
    "curves-maml.png",
    "curves-fomaml.png",
    "curves-reptile-outer_lr0.001.png",
    "curves-reptile-outer_lr0.1.png",
    "curves-finetune-head.png",
    "validation-accuracy.png",
    "accuracy-vs-time.png",
}
STUDY_FIGURES = {"scaling-memory.png", "fidelity.png", "sweep-imaml.png", "sweep-reptile.png"}


def curve(step: int, seed: int, level: float, *, pre: bool = True) -> dict[str, float]:
    """A plausible evaluation row: losses fall and accuracies rise with the step."""
    t = step / STEPS[-1]
    row: dict[str, float] = {
        "step": step,
        "train_time_s": step * 0.2,
        "ms_per_step": 20.0,
        "grad_norm": 1.0 / (1 + t),
    }
    for where, gap in (("train", 0.0), ("val", 0.05)):
        for part, hard in (("support", 0.0), ("query", 0.1)):
            acc = level * t + 0.2 + 0.01 * seed - gap - hard
            row[f"{where}_{part}_acc_post"] = acc
            row[f"{where}_{part}_loss_post"] = 1.6 * (1 - acc) + 0.1
            row[f"{where}_{part}_acc_pre"] = 0.2 if pre else math.nan
            row[f"{where}_{part}_loss_pre"] = 1.61 if pre else math.nan
    return row


def result(
    solver: str,
    seed: int = 0,
    level: float = 0.6,
    *,
    diverge: bool = False,
    overrides: dict | None = None,
    family: str = "first-order",
    preset: str = "smoke",
) -> RunResult:
    config = make_config(solver, preset, {"seed": seed, **(overrides or {})})
    curves = [curve(s, seed, level, pre=family != "baseline") for s in STEPS]
    if diverge:  # as the trainer stores it: NaN training means and validation at the end
        curves[-1] |= {f"{w}_{m}": math.nan for w in ("train", "val") for m in METRICS}
    return RunResult(
        config=config,
        family=family,
        status="diverged" if diverge else "completed",
        steps_done=STEPS[-1],
        curves=curves,
        final_val_acc=None if diverge else level,
        test_acc_mean=None if diverge else level + 0.2 + 0.01 * seed,
        test_acc_ci95=None if diverge else 0.02,
        test_tasks_n=0 if diverge else 8,
        wall_time_s=60.0 * (1 + 3 * level) + seed,
        ms_per_step=20.0,
        peak_memory_mb=500.0,
        memory_kind="cpu_peak_rss",
        device="cpu: test",
        started_at=NOW,
        ended_at=NOW,
        error="non-finite loss or meta-gradient by step 50" if diverge else None,
    )


def write_runs(store: ExperimentStore) -> None:
    store.write_run(result("maml", 0, 0.7, family="second-order"))
    store.write_run(result("maml", 1, 0.72, family="second-order"))
    store.write_run(result("fomaml", 0, 0.6))
    store.write_run(result("reptile", 0, 0.5))
    store.write_run(result("reptile", 0, 0.1, diverge=True, overrides={"outer_lr": 0.1}))
    store.write_run(result("finetune-head", 0, 0.3, family="baseline"))


def fidelity_table() -> pa.Table:
    base = {
        "schema_version": 1, "experiment": "exp", "tasks": 4, "tasks_seed": 3, "split": "maml",
        "ways": 5, "shots": 1, "query": 15, "rotations": True, "inner_lr": 0.4, "inner_steps": 2,
        "hidden": 16, "dtype": "float64", "preset": "smoke", "created_at": NOW,
    }  # fmt: skip
    rows = []
    for point, kind in (("init-s0", "init"), ("maml-s0-abc", "run"), ("maml-s1-abc", "run")):
        study = {"study_id": f"{point}-x", "point": point, "point_kind": kind}
        knobs = [("imaml", "implicit", "cg_steps", v) for v in (1, 2, 5, 10, 20)]
        knobs += [("penalty", "penalty", "lam", v) for v in (0.0, 0.01, 0.1, 1.0)]
        for solver, family, knob, value in knobs:
            err = 1 / (1 + value) + (0.05 if kind == "run" else 0.0)
            rows.append(
                base | study | {"solver": solver, "family": family, "knob": knob,
                                "knob_value": float(value), "cosine": 1 - err / 2,
                                "rel_error": err, "norm_ratio": 1.0, "pseudo_gradient": False}
            )  # fmt: skip
        for solver, cos, pseudo in (("fomaml", 0.9, False), ("reptile", 0.7, True)):
            rows.append(
                base | study | {"solver": solver, "family": "first-order", "cosine": cos,
                                "rel_error": 0.4, "norm_ratio": 0.8, "pseudo_gradient": pseudo}
            )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=FIDELITY_SCHEMA)


def scaling_table() -> pa.Table:
    base = {
        "schema_version": 1, "study_id": "smoke-x", "experiment": "exp", "device": "cpu: test",
        "meta_batch": 2, "ways": 5, "shots": 1, "query": 15, "hidden": 16, "dtype": "float32",
        "preset": "smoke", "isolated": True, "threads": 1, "memory_kind": "cpu_rss_growth",
        "created_at": NOW,
    }  # fmt: skip
    rows = []
    for solver, family, per_step in (
        ("maml", "second-order", 20.0), ("fomaml", "first-order", 0.0), ("imaml", "implicit", 0.5)
    ):  # fmt: skip
        for k in (1, 2, 5, 10):
            rows.append(
                base | {"solver": solver, "family": family, "inner_steps": k,
                        "inner_steps_matter": True, "ms_per_step": 5.0 * k,
                        "peak_memory_mb": 50 + per_step * k}
            )  # fmt: skip
    rows.append(
        base | {"solver": "finetune-head", "family": "baseline", "inner_steps": 1,
                "inner_steps_matter": False, "ms_per_step": 3.0, "peak_memory_mb": 40.0}
    )  # fmt: skip
    rows.append(base | {"solver": "neumann", "family": "implicit", "inner_steps": 1,
                        "inner_steps_matter": True, "error": "out of memory"})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SCALING_SCHEMA)


def trials_table(solver: str, space: dict[str, list[float]]) -> pa.Table:
    """Rows as ``raybench.search.sweep.trials_table`` writes them."""
    rows = []
    n = len(next(iter(space.values())))
    for i in range(n):
        params = {k: v[i] for k, v in space.items()}
        status = ("completed", "stopped", "diverged", "errored")[i % 4]
        acc = None if status in ("diverged", "errored") else 0.3 + 0.05 * i
        history = [{"step": s, "val_acc": (acc or 0.2) * s / 50} for s in (10, 20, 30)]
        rows.append(
            {
                "schema_version": 1, "experiment": "exp", "solver": solver,
                "trial_id": f"t{i}", "status": status, "val_acc": acc,
                "best_val_acc": acc, "steps": 30, "evaluations": 3, "time_s": 4.0,
                "error": "boom" if status == "errored" else None,
                "params_json": json.dumps(params, sort_keys=True),
                "history_json": json.dumps(history if status != "errored" else []),
                **{f"param_{k.replace('.', '_')}": float(v) for k, v in params.items()},
            }
        )  # fmt: skip
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> ExperimentStore:
    store = ExperimentStore(tmp_path_factory.mktemp("plots") / "outputs" / "exp")
    write_runs(store)
    write_table(store.path("fidelity", "init-s0-x"), fidelity_table())
    write_table(store.path("scaling", "smoke-x"), scaling_table())
    imaml = {"inner_lr": [0.01, 0.1, 0.4, 1.0, 0.05, 0.2], "imaml.lam": [0.5, 1, 2, 4, 8, 1]}
    write_table(store.path("trials", "imaml"), trials_table("imaml", imaml))
    reptile = {"outer_lr": [0.001, 0.01, 0.1, 0.003]}
    write_table(store.path("trials", "reptile"), trials_table("reptile", reptile))
    return store


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == PIXELS, (path.name, image.size)
        assert len(np.unique(np.asarray(image.convert("L")))) > 10  # something drawn, not blank


def test_groups_by_configuration_and_label_them_apart(experiment: ExperimentStore) -> None:
    groups = run_groups(experiment.read("runs"), experiment.read("curves"))
    by_slug = {g.slug: g for g in groups}
    assert set(by_slug) == {f.removeprefix("curves-").removesuffix(".png") for f in RUN_FIGURES
                            if f.startswith("curves-")}  # fmt: skip
    assert by_slug["maml"].seeds == [0, 1] and by_slug["maml"].label == "maml"
    assert len(by_slug["maml"].curves) == 2
    diverged = by_slug["reptile-outer_lr0.1"]
    assert diverged.label == "reptile (outer_lr=0.1)" and len(diverged.diverged) == 1
    assert groups[0].family == "baseline"  # the report's order: baselines first


def test_every_figure_renders(experiment: ExperimentStore, tmp_path: Path) -> None:
    skipped: list[str] = []
    written = plot_experiment(experiment, tmp_path / "plots", on_skip=skipped.append)
    assert {p.name for p in written} == RUN_FIGURES | STUDY_FIGURES, skipped
    assert skipped == []
    for path in written:
        assert path.parent == tmp_path / "plots"
        assert_png(path)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        p.name for p in written
    )  # no temporary files left behind


def test_runs_only_skips_the_study_figures(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "runs-only")
    store.write_run(result("fomaml", 0, 0.6))  # one run, one seed: no band
    skipped: list[str] = []
    written = plot_experiment(store, tmp_path / "out", on_skip=skipped.append)
    assert {p.name for p in written} == {
        "curves-fomaml.png",
        "validation-accuracy.png",
        "accuracy-vs-time.png",
    }
    for path in written:
        assert_png(path)
    assert any(s.startswith("scaling:") for s in skipped)
    assert any(s.startswith("fidelity:") for s in skipped)
    assert any(s.startswith("sweeps:") for s in skipped)


def test_several_presets_get_one_comparison_figure_each(tmp_path: Path) -> None:
    """A ``raybench run --matrix`` experiment: labels and file names carry the preset."""
    store = ExperimentStore(tmp_path / "matrix")
    for preset in ("paper", "20w1s"):
        store.write_run(result("maml", 0, 0.7, family="second-order", preset=preset))
        store.write_run(result("fomaml", 0, 0.6, preset=preset))
    groups = run_groups(store.read("runs"), store.read("curves"))
    assert {g.label for g in groups} >= {"maml (paper)", "maml (20w1s)"}
    written = plot_experiment(store, tmp_path / "out")
    assert {p.name for p in written} == {
        *(f"curves-{s}-{p}.png" for s in ("maml", "fomaml") for p in ("paper", "20w1s")),
        *(f"{f}-{p}.png" for f in ("validation-accuracy", "accuracy-vs-time")
          for p in ("paper", "20w1s")),
    }  # fmt: skip
    for path in written:
        assert_png(path)


def test_studies_only_and_old_stores_never_crash(tmp_path: Path) -> None:
    """A study-only experiment has no run figures; a store from before most columns existed
    (and a run diverged before its first evaluation) draws what it can."""
    studies = ExperimentStore(tmp_path / "studies")
    write_table(studies.path("scaling", "s"), scaling_table())
    skipped: list[str] = []
    written = plot_experiment(studies, tmp_path / "a", on_skip=skipped.append)
    assert [p.name for p in written] == ["scaling-memory.png"]
    assert any("no completed or diverged runs" in s for s in skipped)

    old = ExperimentStore(tmp_path / "old")
    runs = [
        {"run_id": "maml-s0", "solver": "maml", "status": "completed", "seed": 0,
         "test_acc_mean": 0.5, "wall_time_s": 30.0},
        {"run_id": "fomaml-s0", "solver": "fomaml", "status": "diverged", "seed": 0},
    ]  # fmt: skip
    write_table(old.path("runs", "r"), pa.Table.from_pylist(runs))
    curves = [{"run_id": "maml-s0", "step": s, "val_query_acc_post": 0.1 * s} for s in (1, 2)]
    write_table(old.path("curves", "c"), pa.Table.from_pylist(curves))
    scaling = [{"solver": "maml", "inner_steps": k, "peak_memory_mb": 10.0 * k} for k in (1, 2)]
    write_table(old.path("scaling", "s"), pa.Table.from_pylist(scaling))
    fidelity = [{"solver": "imaml", "knob": "cg_steps", "knob_value": 1.0, "cosine": 0.9},
                {"solver": "fomaml", "cosine": 0.8}]  # fmt: skip
    write_table(old.path("fidelity", "f"), pa.Table.from_pylist(fidelity))
    write_table(old.path("trials", "t"), pa.Table.from_pylist([{"solver": "maml", "val_acc": 0.5}]))
    skipped = []
    written = plot_experiment(old, tmp_path / "b", on_skip=skipped.append)
    assert {p.name for p in written} == {
        "curves-maml.png",
        "validation-accuracy.png",
        "accuracy-vs-time.png",
        "scaling-memory.png",
        "fidelity.png",
    }
    assert any("fomaml" in s and "no curve rows" in s for s in skipped)
    assert any("sweep of maml" in s and "neither parameters nor histories" in s for s in skipped)
    for path in written:
        assert_png(path)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(RAYBENCH), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_plot_end_to_end(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "outputs" / "tiny")
    store.write_run(result("maml", 0, 0.7, family="second-order"))
    store.write_run(result("reptile", 0, 0.1, diverge=True))
    proc = cli("plot", cwd=tmp_path)  # no argument: the newest experiment under ./outputs
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "outputs" / "tiny" / "plots"
    names = {"curves-maml.png", "curves-reptile.png", "validation-accuracy.png",
             "accuracy-vs-time.png"}  # fmt: skip
    assert {p.name for p in folder.iterdir()} == names
    for name in names:
        assert name in proc.stdout
        assert_png(folder / name)

    proc = cli("plot", "tiny", "--dir", str(tmp_path / "elsewhere"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "elsewhere").iterdir()} == names

    proc = cli("plot", "nothing-here", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: error: ")
    assert "nothing-here" in lines[0]
