"""Figures from small stored experiments, written without training. Every figure kind is
rendered and read back; what a reader sees is checked on the matplotlib objects (axis
limits, tick values, colours, label boxes, panels) and on the files (format by magic
bytes, resolution by pixel size); the skip path, old stores and the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_checks import run_main
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from raybench.errors import RaybenchError
from raybench.measurements.fidelity import FIDELITY_SCHEMA
from raybench.measurements.scaling import SCALING_SCHEMA
from raybench.report.plots import (
    PIXELS,
    NothingToPlot,
    Output,
    Planned,
    figure_kinds,
    plot_experiment,
    register_figure,
    run_groups,
)
from raybench.report.plots.groups import file_stem
from raybench.report.plots.labels import label_boxes
from raybench.report.plots.measurements import fidelity_figure, scaling_figure
from raybench.report.plots.registry import _KINDS
from raybench.report.plots.runs import accuracy_time_figure, curves_figure, validation_figure
from raybench.report.plots.style import SOLVER_COLORS, blank_figure, save, solver_color
from raybench.report.plots.sweep import sweep_figure
from raybench.results import ExperimentStore
from raybench.results.store import write_table
from raybench.solvers import METRICS, make_config
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


def curve(
    step: int, seed: int, level: float, *, baseline: bool = False, last: int = STEPS[-1]
) -> dict[str, float]:
    """A plausible evaluation row, accuracies in percent: losses fall and accuracies rise
    with the step. A baseline's training rows hold its classifier, not a query set."""
    t = step / last
    row: dict[str, float] = {
        "step": step,
        "train_time_s": step * 0.2,
        "ms_per_step": 20.0,
        "grad_norm": 1.0 / (1 + t),
    }
    for where, gap in (("train", 0.0), ("val", 5.0)):
        for part, hard in (("support", 0.0), ("query", 10.0)):
            acc = level * t + 20 + seed - gap - hard
            row[f"{where}_{part}_acc_post"] = acc
            row[f"{where}_{part}_loss_post"] = 1.6 * (1 - acc / 100) + 0.1
            row[f"{where}_{part}_acc_pre"] = 20.0
            row[f"{where}_{part}_loss_pre"] = 1.61
    if baseline:
        for m in METRICS:
            row[f"train_{m}"] = math.nan
        row["train_classifier_loss"] = 3.0 - 2 * t
        row["train_classifier_acc"] = 60 * t
    return row


def result(
    solver: str,
    seed: int = 0,
    level: float = 60.0,
    *,
    diverge: bool = False,
    overrides: dict | None = None,
    family: str = "first-order",
    preset: str = "smoke",
    steps: tuple[int, ...] = STEPS,
    wall_time_s: float | None = None,
    ci: float = 2.0,
) -> RunResult:
    config = make_config(solver, preset, {"seed": seed, **(overrides or {})})
    curves = [curve(s, seed, level, baseline=family == "baseline", last=steps[-1]) for s in steps]
    if diverge:  # as the trainer stores it: NaN training means and validation at the end
        curves[-1] |= {f"{w}_{m}": math.nan for w in ("train", "val") for m in METRICS}
    return RunResult(
        config=config,
        family=family,
        status="diverged" if diverge else "completed",
        steps_done=steps[-1],
        curves=curves,
        final_val_acc=None if diverge else level,
        test_acc_mean=None if diverge else level + 20 + seed,
        test_acc_ci95=None if diverge else ci,
        test_tasks_n=0 if diverge else 8,
        wall_time_s=wall_time_s if wall_time_s is not None else 60.0 * (1 + level / 33) + seed,
        ms_per_step=20.0,
        peak_memory_mb=500.0,
        memory_kind="cpu_peak_rss",
        device="cpu: test",
        started_at=NOW,
        ended_at=NOW,
        error="non-finite loss or meta-gradient by step 50" if diverge else None,
    )


def write_runs(store: ExperimentStore) -> None:
    store.write_run(result("maml", 0, 70, family="second-order"))
    store.write_run(result("maml", 1, 72, family="second-order"))
    store.write_run(result("fomaml", 0, 60))
    store.write_run(result("reptile", 0, 50))
    store.write_run(result("reptile", 0, 10, diverge=True, overrides={"outer_lr": 0.1}))
    store.write_run(result("finetune-head", 0, 30, family="baseline"))


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
            if solver == "penalty":  # lambda = 0 is MAML itself: exactly no error
                err = 0.0 if value == 0 else value / (1 + value)
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


def scaling_rows(**base_extra) -> list[dict]:
    base = {
        "schema_version": 1, "study_id": "smoke-x", "experiment": "exp", "device": "cpu: test",
        "meta_batch": 2, "ways": 5, "shots": 1, "query": 15, "hidden": 16, "dtype": "float32",
        "preset": "smoke", "isolated": True, "threads": 1, "memory_kind": "cpu_peak_rss_delta",
        "created_at": NOW,
    } | base_extra  # fmt: skip
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
    for solver in ("finetune-head", "finetune-full"):  # the same numbers: one would hide
        rows.append(
            base | {"solver": solver, "family": "baseline", "inner_steps": 1,
                    "inner_steps_matter": False, "ms_per_step": 3.0, "peak_memory_mb": 40.0}
        )  # fmt: skip
    rows.append(base | {"solver": "neumann", "family": "implicit", "inner_steps": 1,
                        "inner_steps_matter": True, "error": "out of memory"})  # fmt: skip
    return rows


def scaling_table() -> pa.Table:
    return pa.Table.from_pylist(scaling_rows(), schema=SCALING_SCHEMA)


def trials_table(solver: str, space: dict[str, list[float]]) -> pa.Table:
    """Rows as ``raybench.search.sweep.trials_table`` writes them (accuracies in %)."""
    rows = []
    n = len(next(iter(space.values())))
    for i in range(n):
        params = {k: v[i] for k, v in space.items()}
        status = ("completed", "stopped", "diverged", "errored")[i % 4]
        acc = None if status in ("diverged", "errored") else 30.0 + 5 * i
        steps = (10,) if status == "stopped" else (10, 20, 30)  # ASHA stopped it at once
        history = [{"step": s, "val_acc": (acc or 20.0) * s / 50} for s in steps]
        rows.append(
            {
                "schema_version": 2, "experiment": "exp", "solver": solver,
                "trial_id": f"t{i}", "status": status, "val_acc": acc,
                "best_val_acc": acc, "steps": steps[-1], "evaluations": len(steps),
                "time_s": 4.0, "error": "boom" if status == "errored" else None,
                "params_json": json.dumps(params, sort_keys=True),
                "history_json": json.dumps(history if status != "errored" else []),
                **{f"param_{k.replace('.', '_')}": float(v) for k, v in params.items()},
            }
        )  # fmt: skip
    return pa.Table.from_pylist(rows)


IMAML_SPACE = {
    "inner_lr": [0.01, 0.1, 0.4, 1.0, 0.05, 0.2],
    "imaml.lam": [0.5, 1, 2, 4, 8, 1],
    "inner_steps": [1, 3, 5, 2, 4, 5],
    "imaml.cg_steps": [1, 5, 10, 20, 2, 3],
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> ExperimentStore:
    store = ExperimentStore(tmp_path_factory.mktemp("plots") / "outputs" / "exp")
    write_runs(store)
    write_table(store.path("fidelity", "init-s0-x"), fidelity_table())
    write_table(store.path("scaling", "smoke-x"), scaling_table())
    write_table(store.path("trials", "imaml"), trials_table("imaml", IMAML_SPACE))
    reptile = {"outer_lr": [0.001, 0.01, 0.1, 0.003], "inner_lr": [0.1, 0.2, 0.3, 0.15]}
    write_table(store.path("trials", "reptile"), trials_table("reptile", reptile))
    return store


def assert_png(path: Path, pixels: tuple[int, int] = PIXELS) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == pixels, (path.name, image.size)
        assert len(np.unique(np.asarray(image.convert("L")))) > 10  # something drawn, not blank


def groups_of(store: ExperimentStore):
    return run_groups(store.read("runs"), store.read("curves"))


def drawn(fig: Figure) -> Figure:
    fig.canvas.draw()
    return fig


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def legend_color(fig: Figure, prefix: str) -> str:
    """The colour of the legend entry whose label starts with ``prefix``."""
    for leg in fig.legends:
        for handle, text in zip(leg.legend_handles, leg.get_texts()):
            if text.get_text().startswith(prefix):
                return to_hex(handle.get_color())
    raise AssertionError(f"no legend entry {prefix!r} in {legend_texts(fig)}")


def curve_lines(ax) -> list[Line2D]:
    """The data lines of a panel (not the dotted chance level)."""
    return [line for line in ax.get_lines() if line.get_linestyle() != ":"]


def visible_ticks(axis) -> list[float]:
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_majorticklocs() if lo - 1e-9 <= t <= hi + 1e-9]


# -- every figure, the files --------------------------------------------------------------


def test_groups_by_configuration_and_label_them_apart(experiment: ExperimentStore) -> None:
    groups = groups_of(experiment)
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


@pytest.mark.parametrize(
    ("fmt", "magic"), [("pdf", b"%PDF-"), ("svg", b"<?xml"), ("png", b"\x89PNG\r\n\x1a\n")]
)
def test_formats_by_their_magic_bytes(
    experiment: ExperimentStore, tmp_path: Path, fmt: str, magic: bytes
) -> None:
    written = plot_experiment(experiment, tmp_path, output=Output(fmt), kinds=["scaling"])
    assert [p.name for p in written] == [f"scaling-memory.{fmt}"]
    data = written[0].read_bytes()
    assert data.startswith(magic)
    if fmt == "svg":
        assert b"<svg" in data[:2000]


def test_dpi_sets_the_pixel_size(experiment: ExperimentStore, tmp_path: Path) -> None:
    written = plot_experiment(experiment, tmp_path, output=Output("png", 150), kinds=["fidelity"])
    assert_png(written[0], (1800, 900))
    with pytest.raises(RaybenchError, match="format"):
        Output("gif")
    with pytest.raises(RaybenchError, match="dpi"):
        Output("png", 5)


# -- colours ------------------------------------------------------------------------------


def test_one_colour_per_solver_in_every_figure_of_every_experiment(tmp_path: Path) -> None:
    """Two experiments with different solvers in different orders: maml, fomaml and reptile
    keep their colour in the validation, accuracy-vs-time and scaling figures of both."""
    first = ExperimentStore(tmp_path / "a")
    for solver, family in (("maml", "second-order"), ("fomaml", "first-order")):
        first.write_run(result(solver, 0, 60, family=family))
    second = ExperimentStore(tmp_path / "b")
    for solver, family in (
        ("finetune-full", "baseline"), ("reptile", "first-order"), ("fomaml", "first-order"),
        ("imaml", "implicit"), ("maml", "second-order"),
    ):  # fmt: skip
        second.write_run(result(solver, 0, 60, family=family))
    seen: dict[str, set[str]] = {}
    for store in (first, second):
        groups = groups_of(store)
        for fig in (validation_figure(groups), accuracy_time_figure(groups)):
            for g in groups:
                seen.setdefault(g.solver, set()).add(legend_color(fig, f"{g.solver}:"))
    scaling = scaling_figure(scaling_table())
    for solver in ("maml", "fomaml", "imaml", "finetune-full"):
        seen[solver].add(legend_color(scaling, f"{solver}:"))
    for solver, colors in seen.items():
        assert colors == {to_hex(SOLVER_COLORS[solver])}, (solver, colors)
    assert len({to_hex(c) for c in SOLVER_COLORS.values()}) == len(SOLVER_COLORS)
    assert solver_color("not-a-solver") == solver_color("not-a-solver")  # stable spare


# -- axes ---------------------------------------------------------------------------------


def test_meta_step_ticks_are_whole_numbers(tmp_path: Path) -> None:
    """A short run evaluated at steps 2 and 4 (the smoke preset) gave ticks at 2.25 steps."""
    store = ExperimentStore(tmp_path / "short")
    store.write_run(result("maml", 0, 60, family="second-order", steps=(2, 4)))
    store.write_run(result("maml", 1, 62, family="second-order", steps=(2, 4)))
    (group,) = groups_of(store)
    for fig in (drawn(curves_figure(group)), drawn(validation_figure([group]))):
        for ax in fig.axes:  # every panel's x axis is the meta-step
            ticks = visible_ticks(ax.xaxis)
            assert ticks and all(t == int(t) for t in ticks), ticks


def test_accuracy_axes_fit_the_data_and_say_when_not_from_zero(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "high")
    for seed in (0, 1):  # validation accuracy between about 80% and 88%
        store.write_run(result("maml", seed, 5, family="second-order", overrides={"ways": 5}))
    groups = groups_of(store)
    for row in groups[0].curves.values():
        for r in row:
            r["val_query_acc_post"] = 80 + r["step"] / 10 + r.get("seed", 0)
    ax = validation_figure(groups).axes[0]
    bottom, top = ax.get_ylim()  # the data: 81% to 86%
    assert 60 <= bottom <= 81 and 86 <= top <= 100 and top - bottom <= 25, (bottom, top)
    assert "not 0" in ax.get_ylabel() and f"{bottom:g}%" in ax.get_ylabel()

    low = ExperimentStore(tmp_path / "low")  # 13% to 45%: fitted at both ends
    low.write_run(result("fomaml", 0, 40))
    ax = validation_figure(groups_of(low)).axes[0]
    bottom, top = ax.get_ylim()
    assert 0 < bottom <= 13 and 45 <= top < 100 and f"starts at {bottom:g}%" in ax.get_ylabel()

    groups = groups_of(low)  # from 2% upwards: close enough to zero to show it
    for rows in groups[0].curves.values():
        for r in rows:
            r["val_query_acc_post"] = 2 + r["step"] / 2
    ax = validation_figure(groups).axes[0]
    assert ax.get_ylim()[0] == 0 and "not 0" not in ax.get_ylabel()
    assert 27 <= ax.get_ylim()[1] < 100


def test_time_axis_starts_at_zero_in_a_readable_unit(tmp_path: Path) -> None:
    """Runs of 6.1-6.5 s once gave a minutes axis from 0.1015 to 0.109."""
    store = ExperimentStore(tmp_path / "t")
    for i, solver in enumerate(("maml", "fomaml", "reptile")):
        store.write_run(result(solver, 0, 60 + i, wall_time_s=6.1 + 0.2 * i))
    ax = drawn(accuracy_time_figure(groups_of(store))).axes[0]
    left, right = ax.get_xlim()
    assert left == 0 and 6.5 < right < 8
    assert ax.get_xlabel().endswith("(s)")
    ticks = visible_ticks(ax.xaxis)
    assert len(ticks) >= 3
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and steps.pop() in (0.5, 1.0, 2.0, 2.5), ticks

    long = ExperimentStore(tmp_path / "long")
    long.write_run(result("maml", 0, 60, wall_time_s=45 * 60))
    ax = drawn(accuracy_time_figure(groups_of(long))).axes[0]
    assert ax.get_xlim()[0] == 0 and ax.get_xlabel().endswith("(min)")


def test_point_labels_never_overlap(tmp_path: Path) -> None:
    """Eight configurations at almost the same time and accuracy: every label that is shown
    has a box of its own, inside the axes; each configuration is in the legend anyway."""
    store = ExperimentStore(tmp_path / "crowd")
    for i, lr in enumerate((0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008)):
        store.write_run(
            result("reptile", 0, 60 + 0.1 * i, wall_time_s=100 + i, overrides={"outer_lr": lr})
        )
    fig = accuracy_time_figure(groups_of(store))
    fig.canvas.draw()
    ax = fig.axes[0]
    boxes = label_boxes(ax)
    assert len(boxes) >= 4
    frame = ax.get_window_extent()
    for i, a in enumerate(boxes):
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert sum(t.startswith("reptile (outer_lr=") for t in legend_texts(fig)) == 8


def test_error_bars_mean_one_thing(tmp_path: Path) -> None:
    """Two seeds (test-task intervals 2 and 4) and one seed (interval 3): every bar is the
    95% interval over test tasks, never the range over seeds."""
    store = ExperimentStore(tmp_path / "bars")
    store.write_run(result("maml", 0, 60, family="second-order", ci=2.0))
    store.write_run(result("maml", 1, 70, family="second-order", ci=4.0))  # accs 80 and 91
    store.write_run(result("fomaml", 0, 50, ci=3.0))
    fig = accuracy_time_figure(groups_of(store))
    ax = fig.axes[0]
    halves = []
    for container in ax.containers:
        (segments,) = [c.get_segments() for c in container.lines[2]]
        (seg,) = segments
        halves.append(round((seg[1][1] - seg[0][1]) / 2, 6))
    assert sorted(halves) == [3.0, 3.0]  # (2 + 4) / 2 for maml, 3 for fomaml; range was 5.5
    title = ax.get_title()
    assert "95% interval over the test tasks" in title and "range" not in title


# -- panels, bands, legends ------------------------------------------------------------------


def test_legends_never_call_the_training_query_set_test(experiment: ExperimentStore) -> None:
    groups = groups_of(experiment)
    figures = [curves_figure(g) for g in groups] + [validation_figure(groups)]
    for fig in figures:
        for text in legend_texts(fig):
            assert "Test" not in text and "[Train" not in text, text


def test_baseline_curves_show_the_classifier_not_a_query_loss(experiment: ExperimentStore) -> None:
    """The fine-tuning baseline's training step is a classifier's: its curve is drawn under
    that name, and no "query set, before adaptation" line comes from the training rows."""
    (baseline,) = [g for g in groups_of(experiment) if g.family == "baseline"]
    fig = curves_figure(baseline)
    assert any("pre-training classifier" in t for t in legend_texts(fig))
    train_loss, train_acc = fig.axes[0], fig.axes[2]  # left column: training batches
    for ax in (train_loss, train_acc):
        assert len(curve_lines(ax)) == 1
    # On the validation tasks the zero head's losses before adaptation coincide (log 5 for
    # support and query): the second is dashed over the first rather than hidden by it.
    val_loss = fig.axes[1]
    styles = [line.get_linestyle() for line in curve_lines(val_loss)]
    assert styles.count("--") == 1 and styles.count("-") == len(styles) - 1
    assert any("dashed where it lies on another" in t for t in legend_texts(fig))


def test_old_baseline_curves_are_read_as_classifier_curves(tmp_path: Path) -> None:
    """A store from before the classifier columns kept the baseline's classifier loss in
    ``train_query_loss_pre``: it is read under its true name, the query column empty."""
    store = ExperimentStore(tmp_path / "old-baseline")
    rows = [
        {"schema_version": 2, "run_id": "finetune-head-s0-x", "solver": "finetune-head",
         "seed": 0, "step": s, "train_query_loss_pre": 3.0 - s / 10,
         "train_query_acc_pre": 10.0 * s, "val_query_acc_post": 30.0 + s}
        for s in (1, 2, 3)
    ]  # fmt: skip
    write_table(store.path("curves", "finetune-head-s0-x"), pa.Table.from_pylist(rows))
    curves = store.read("curves").to_pylist()
    assert [r["train_classifier_loss"] for r in curves] == [2.9, 2.8, 2.7]
    assert [r["train_classifier_acc"] for r in curves] == [10.0, 20.0, 30.0]
    assert all(r["train_query_loss_pre"] is None for r in curves)


def test_many_configurations_become_small_multiples(tmp_path: Path) -> None:
    """Eight solvers with two seeds each: eight panels on shared axes, one band each,
    rather than eight lines and eight bands in one panel."""
    store = ExperimentStore(tmp_path / "eight")
    solvers = ("maml", "fomaml", "reptile", "imaml", "neumann", "penalty")
    solvers += ("finetune-head", "finetune-full")
    for i, solver in enumerate(solvers):
        for seed in (0, 1):
            store.write_run(result(solver, seed, 30 + 5 * i))
    fig = validation_figure(groups_of(store))
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 8
    assert len({ax.get_ylim() for ax in panels}) == 1  # shared: comparable at a glance
    for ax in panels:
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1
    (group,) = [g for g in groups_of(store) if g.solver == "maml"]
    for ax in curves_figure(group).axes:  # the four curves: bands on at most two of them
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) <= 2
        assert len(curve_lines(ax)) <= 4


def test_sweep_grid_has_no_empty_cell_and_shows_the_stopped_trial(
    experiment: ExperimentStore,
) -> None:
    """Five panels (history and four parameters) once left three of a 2x4 grid empty; a
    trial stopped after its first evaluation was a one-point line, which draws nothing."""
    fig = sweep_figure(experiment.read("trials"), "imaml")
    axes = fig.axes
    assert len(axes) == 5 and all(ax.axison for ax in axes)
    grid = axes[0].get_subplotspec().get_gridspec()
    covered = set()
    for ax in axes:
        spec = ax.get_subplotspec()
        covered |= {(r, c) for r in spec.rowspan for c in spec.colspan}
    assert covered == {(r, c) for r in range(grid.nrows) for c in range(grid.ncols)}
    assert len({ax.get_ylim() for ax in axes}) == 1  # one shared accuracy axis
    history = axes[0]
    stopped = [
        line for line in history.get_lines()
        if list(line.get_xdata()) == [10.0] and line.get_marker() not in (None, "None", "")
    ]  # fmt: skip
    assert stopped, "the stopped trial's only point has no marker"
    ticks = visible_ticks(history.xaxis)
    assert all(t == int(t) for t in ticks)


def test_one_scale_rule_for_parameters(experiment: ExperimentStore) -> None:
    """inner_lr spans 100x in one sweep and 3x in another: log in both; counts linear with
    whole-number ticks; a knob with a zero on a symmetric-log axis that says so."""
    imaml = {ax.get_xlabel().split(" ")[0]: ax for ax in sweep_figure(
        experiment.read("trials"), "imaml").axes}  # fmt: skip
    reptile = {ax.get_xlabel().split(" ")[0]: ax for ax in sweep_figure(
        experiment.read("trials"), "reptile").axes}  # fmt: skip
    assert imaml["inner_lr"].get_xscale() == reptile["inner_lr"].get_xscale() == "log"
    assert imaml["imaml.lam"].get_xscale() == "log"
    for count in ("inner_steps", "imaml.cg_steps"):
        assert imaml[count].get_xscale() == "linear"
        ticks = visible_ticks(imaml[count].xaxis)
        assert ticks and all(t == int(t) for t in ticks)
    fidelity = fidelity_figure(fidelity_table())
    knob_axes = {ax.get_xlabel().split(" ")[0]: ax for ax in fidelity.axes if ax.get_xlabel()}
    assert knob_axes["imaml:"].get_xscale() == "linear"  # CG steps: a count
    assert knob_axes["penalty:"].get_xscale() == "symlog"  # lambda with 0 among its values
    assert "to show 0" in knob_axes["penalty:"].get_xlabel()


def test_a_zero_on_a_log_axis_is_drawn_and_explained() -> None:
    """Penalty at lambda = 0 is exactly MAML: relative error 0, which a log axis drops."""
    fig = fidelity_figure(fidelity_table())
    (penalty_err,) = [ax for ax in fig.axes if ax.get_xlabel().startswith("penalty:")]
    assert penalty_err.get_yscale() == "log"
    zeros = [line for line in penalty_err.get_lines() if line.get_marker() == "v"]
    assert zeros and list(zeros[0].get_xdata()) == [0.0]
    assert any("exactly 0" in t for t in legend_texts(fig))


def test_panels_of_one_quantity_share_their_y_axis() -> None:
    fig = fidelity_figure(fidelity_table())
    top = [ax for ax in fig.axes if ax.get_subplotspec().rowspan.start == 0]
    bottom = [ax for ax in fig.axes if ax.get_subplotspec().rowspan.start == 1]
    assert len(top) == len(bottom) == 3  # imaml, penalty, and the solvers without a knob
    for row in (top, bottom):
        assert len({ax.get_ylim() for ax in row}) == 1
        assert len({ax.get_yscale() for ax in row}) == 1
    rows = scaling_rows() + scaling_rows(device="cuda: test", memory_kind="cuda_max_allocated")
    two = scaling_figure(pa.Table.from_pylist(rows, schema=SCALING_SCHEMA))
    assert "own y scale" in two.get_suptitle()  # different settings: said, not hidden


def test_a_line_hiding_another_is_drawn_over_it_and_named() -> None:
    """finetune-full's horizontal line lay exactly on finetune-head's and disappeared."""
    fig = scaling_figure(scaling_table())
    for ax in fig.axes:  # memory and time: the two baselines coincide in both
        lines = {}
        for solver in ("finetune-head", "finetune-full"):
            (lines[solver],) = [
                line for line in ax.get_lines()
                if to_hex(line.get_color()) == to_hex(SOLVER_COLORS[solver])
            ]  # fmt: skip
        top, under = sorted(lines, key=lambda s: -lines[s].get_zorder())
        assert lines[top].get_linewidth() < lines[under].get_linewidth()
    (label,) = [t for t in legend_texts(fig) if t.startswith(f"{top}:")]
    assert f"[dashed over memory: {under}; time: {under}]" in " ".join(label.split())
    assert not any("dashed over" in t for t in legend_texts(fig) if t.startswith(f"{under}:"))


def test_scaling_figure_uses_verdict_names_not_keys() -> None:
    fig = scaling_figure(scaling_table())
    assert "cpu_peak_rss" not in fig.axes[0].get_title()
    texts = legend_texts(fig)
    assert any(t.startswith("maml: memory grows") for t in texts)
    assert any(t.startswith("fomaml: memory flat") for t in texts)
    assert any("trend rule" in t for t in texts)


# -- extra figure kinds, skipping, old stores -------------------------------------------------


def test_an_extra_figure_kind_is_drawn_with_the_others(
    experiment: ExperimentStore, tmp_path: Path
) -> None:
    from raybench.report.plots.style import new_figure

    def extra(ctx):
        if not ctx.table("fidelity").num_rows:
            raise NothingToPlot("no fidelity table")
        yield Planned("extra one", "extra-one", lambda: new_figure()[0])

        def none() -> Figure:
            raise NothingToPlot("nothing for the second")

        yield Planned("extra two", "extra-two", none)

    register_figure("extra", extra, order=99)
    try:
        assert "extra" in figure_kinds()
        skipped: list[str] = []
        written = plot_experiment(experiment, tmp_path, on_skip=skipped.append)
        assert "extra-one.png" in {p.name for p in written}
        assert skipped == ["extra two: nothing for the second"]
        empty = ExperimentStore(tmp_path / "empty")
        write_table(empty.path("scaling", "s"), scaling_table())
        skipped = []
        plot_experiment(empty, tmp_path / "e", on_skip=skipped.append, kinds=["extra"])
        assert skipped == ["extra: no fidelity table"]
    finally:
        _KINDS.pop("extra", None)


def test_runs_only_skips_the_study_figures(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "runs-only")
    store.write_run(result("fomaml", 0, 60))  # one run, one seed: no band
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
        store.write_run(result("maml", 0, 70, family="second-order", preset=preset))
        store.write_run(result("fomaml", 0, 60, preset=preset))
    groups = groups_of(store)
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
    store.write_run(result("maml", 0, 70, family="second-order"))
    store.write_run(result("reptile", 0, 10, diverge=True))
    proc = cli("plot", cwd=tmp_path)  # no argument: the newest experiment under ./outputs
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "outputs" / "tiny" / "plots"
    names = {"curves-maml.png", "curves-reptile.png", "validation-accuracy.png",
             "accuracy-vs-time.png"}  # fmt: skip
    assert {p.name for p in folder.iterdir()} == names
    assert "1200x600 px" in proc.stdout
    for name in names:
        assert name in proc.stdout
        assert_png(folder / name)

    elsewhere = tmp_path / "elsewhere"
    proc = run_main("plot", "-e", "tiny", "--dir", str(elsewhere), "--format", "svg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in elsewhere.iterdir()} == {n.replace(".png", ".svg") for n in names}
    assert all(p.read_bytes().startswith(b"<?xml") for p in elsewhere.iterdir())

    proc = run_main(
        "plot", "-e", "tiny", "--dir", str(tmp_path / "hi"), "--dpi", "50", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert_png(tmp_path / "hi" / "validation-accuracy.png", (600, 300))

    for args in (("plot", "-e", "nothing-here"), ("plot", "-e", "tiny", "--format", "gif"),
                 ("plot", "-e", "tiny", "--dpi", "0")):  # fmt: skip
        proc = run_main(*args, cwd=tmp_path)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr + proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("raybench: error: "), lines
    assert "nothing-here" in run_main("plot", "-e", "nothing-here", cwd=tmp_path).stderr


def test_a_stored_solver_name_never_becomes_a_path(tmp_path: Path) -> None:
    """Issue 46, case 1: runs and curves files whose solver text climbs out of the
    experiment. ``store check`` names them nonconforming, ``plot`` skips them with a warning
    and writes every figure under the plots folder; the file they aimed at is neither
    created nor overwritten. Were such a name read all the same, its figure's name would be
    a plain one (:func:`file_stem`)."""
    from stores import comparison_store

    store, _ = comparison_store(tmp_path / "outputs" / "exp")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "NAME.png").write_text("mine")
    hostile = f"x/../../../../{target.name}/NAME"
    for table in ("runs", "curves"):
        for path in store.root.joinpath(table).glob("maml-*.parquet"):
            data = pq.read_table(path)
            column = data.schema.get_field_index("solver")
            solver = pa.array([hostile] * data.num_rows, data.schema.field(column).type)
            pq.write_table(data.set_column(column, "solver", solver), path)
    checked = run_main("store", "check", "-e", "exp", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.count("is a path or a hidden name") == 12  # 6 runs, 6 curves files
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    done = run_main("plot", "-e", "exp", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped outputs/exp/runs/maml-" in done.stderr
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    plots = store.root / "plots"
    assert written and all(p.parent == plots for p in written), sorted(written)
    assert (target / "NAME.png").read_text() == "mine"
    stem = file_stem(hostile)
    assert Path(stem).name == stem and stem.startswith("x-elsewhere-NAME-")
    assert file_stem("x/NAME") != file_stem("x-NAME") and file_stem("maml") == "maml"


def test_save_refuses_a_figure_name_that_is_a_path(tmp_path: Path) -> None:
    fig = blank_figure()
    for stem in ("../up", "a/b", ".hidden", ""):
        with pytest.raises(RaybenchError, match="not a plain file name"):
            save(fig, tmp_path, stem)
    assert list(tmp_path.iterdir()) == []
