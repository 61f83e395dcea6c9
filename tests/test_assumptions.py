"""The implicit solvers' assumption measurements: each number against a dense float64
oracle, the verdicts both ways, the exact solution of a solver's own system, and the
measurements through training, the store, the report and the figure."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from helpers import (
    dense_truncated_cg,
    flat,
    params64,
    proximal_descent,
    query_gradient,
    rel_err,
    sgd,
    smooth_model,
    solver_for,
    support_hessian,
    tiny_batch,
)
from rich.console import Console

from raybench.assumption_checks import verdict, violations
from raybench.assumptions import curve_values, exact_solution, lanczos_starts, measure
from raybench.data import OmniglotImages
from raybench.metrics import CURVE_COLUMNS
from raybench.report.flat import render_flat
from raybench.report.records import aggregate_runs
from raybench.report.tables import summary_tables
from raybench.results import ExperimentStore
from raybench.solvers import make_config
from raybench.solvers.imaml import IMAML, IMAMLOptions
from raybench.tasks import TaskBatch
from raybench.train import RunResult, train

N_PARAMS = 318  # the helpers' conv4 with 3 filters, 3-way


def grad_norm(model, params, x, y) -> torch.Tensor:
    return query_gradient(model, params, x, y).norm()


@pytest.mark.usefixtures("both_batchings")
def test_imaml_measurements_match_dense_oracles() -> None:
    """Stationarity, the Hessian's extreme eigenvalues (60 Lanczos steps: converged here),
    I + H/lam, the CG iterations and negative-curvature stops, and the solve's residual,
    each against its own float64 computation, task by task."""
    lam, steps, lr = 0.05, 2, 0.4
    model, solver = solver_for("imaml", lam=lam, cg_steps=30)
    params, batch = params64(model), tiny_batch(2)
    m = measure(solver, params, batch, lanczos_starts(params, 2), lanczos_steps=60)
    for b in range(2):
        sx, sy, qx, qy = batch.task(b)
        phi, _ = proximal_descent(model, params, sx, sy, lam, lr, steps)
        prox = query_gradient(model, phi, sx, sy) + lam * (flat(phi) - flat(params))
        assert m.stationarity[b].item() == pytest.approx(
            (prox.norm() / grad_norm(model, params, sx, sy)).item(), rel=1e-8
        )
        hessian = support_hessian(model, phi, sx, sy)
        eig = torch.linalg.eigvalsh(hessian)
        scale = eig.abs().max().item()
        assert abs(m.hessian_min[b].item() - eig[0].item()) < 1e-8 * scale
        assert abs(m.hessian_max[b].item() - eig[-1].item()) < 1e-8 * scale
        matrix = torch.eye(N_PARAMS, dtype=torch.float64) + hessian / lam
        rhs = query_gradient(model, phi, qx, qy)
        x, taken, stopped = dense_truncated_cg(matrix, rhs, 30)
        assert m.iterations[b].item() == taken and bool(m.negative_curvature[b]) == stopped
        residual = ((matrix @ x - rhs).norm() / rhs.norm()).item()
        assert m.residual[b].item() == pytest.approx(residual, rel=1e-6)
    row = curve_values(solver, m)
    assert row["diag_convexity"] == pytest.approx(1 + m.hessian_min.min().item() / lam)
    assert row["diag_convexity"] < 0 and row["diag_indefinite_tasks"] >= 1
    assert row["diag_negative_curvature"] == int(m.negative_curvature.sum()) >= 1
    failed = violations(row, solver.assumptions)
    assert failed is not None and {"convex", "stationary"} <= set(failed)


def test_imaml_assumptions_hold_where_the_theory_says_they_should() -> None:
    """lam well above minus the smallest eigenvalue, the proximal problem solved (a smooth
    network: ReLU kinks and batch-norm make plain descent stall), enough CG iterations:
    every check passes, and the same measurements say so."""
    model, theta = smooth_model()
    options = IMAMLOptions(lam=2.0, proximal_steps=300, proximal_lr=0.1, cg_steps=40)
    solver = IMAML(model, inner_lr=0.4, inner_steps=1, options=options)
    raw = tiny_batch(2, shots=2, query=3, seed=4)
    batch = TaskBatch(raw.support_x * 0.05, raw.support_y, raw.query_x * 0.05, raw.query_y)
    m = measure(solver, theta, batch, lanczos_starts(theta, 2), lanczos_steps=40)
    row = curve_values(solver, m)
    assert row["diag_convexity"] > 0 and row["diag_negative_curvature"] == 0
    assert row["diag_stationarity"] < 1e-6 and row["diag_solve_residual"] < 1e-6
    assert violations(row, solver.assumptions) == []
    assert verdict("imaml", [row, row]) == "hold (2 evaluations)"
    # the default inner loop (one step of 0.4 on the support loss) leaves it unsolved
    plain = IMAML(model, inner_lr=0.4, inner_steps=1, options=IMAMLOptions(lam=2.0, cg_steps=40))
    row = curve_values(plain, measure(plain, theta, batch, lanczos_starts(theta, 2), 40))
    assert violations(row, plain.assumptions) == ["stationary"]


@pytest.mark.usefixtures("both_batchings")
def test_neumann_measurements_match_the_series_and_the_spectrum() -> None:
    """rho(alpha H) from the dense spectrum, the series' residual ||(alpha H)^(k+1) v|| /
    ||v|| (what the truncation leaves), and the contraction check on both sides of 1."""
    model, _ = solver_for("neumann")
    params, batch = params64(model), tiny_batch(2)
    dense = []  # Neumann adapts by plain SGD: the same phi for every alpha
    for b in range(2):
        sx, sy, qx, qy = batch.task(b)
        phi = sgd(model, params, sx, sy, 2)
        dense.append((support_hessian(model, phi, sx, sy), query_gradient(model, phi, qx, qy)))
    for alpha, converges in ((None, False), (0.01, True)):
        options = {"terms": 3} if alpha is None else {"terms": 3, "alpha": alpha}
        _, solver = solver_for("neumann", **options)
        m = measure(solver, params, batch, lanczos_starts(params, 2), lanczos_steps=60)
        a = solver.alpha
        radii = []
        for b, (hessian, v) in enumerate(dense):
            radii.append(torch.linalg.eigvalsh(hessian).abs().max().item() * a)
            left = torch.linalg.matrix_power(a * hessian, 4) @ v
            assert m.residual[b].item() == pytest.approx((left.norm() / v.norm()).item(), rel=1e-6)
        row = curve_values(solver, m)
        assert row["diag_spectral_radius"] == pytest.approx(max(radii), rel=1e-8)
        assert row["diag_negative_curvature"] is None  # no CG here
        failed = violations(row, solver.assumptions)
        assert (row["diag_spectral_radius"] < 1) == converges  # inner lr 0.4: far from it
        assert ("contraction" not in failed) == converges


@functools.cache
def dense_exact(lam: float, damping: float) -> tuple[torch.Tensor, float]:
    """The mean over the tasks of A^{-1} grad L_query, and the smallest eigenvalue of H."""
    model, _ = solver_for("imaml", lam=lam, damping=damping)
    params, batch = params64(model), tiny_batch(2)
    solutions, lows = [], []
    for b in range(2):
        sx, sy, qx, qy = batch.task(b)
        phi, _ = proximal_descent(model, params, sx, sy, lam, 0.4, 2)
        hessian = support_hessian(model, phi, sx, sy)
        lows.append(torch.linalg.eigvalsh(hessian)[0].item())
        matrix = (1 + damping) * torch.eye(N_PARAMS, dtype=torch.float64) + hessian / lam
        solutions.append(torch.linalg.solve(matrix, query_gradient(model, phi, qx, qy)))
    return torch.stack(solutions).mean(0), min(lows)


@pytest.mark.usefixtures("both_batchings")
@pytest.mark.parametrize("dense_max", [10**6, 0])
def test_exact_solution_of_the_solver_s_own_system(dense_max: int) -> None:
    """Dense or MINRES, the exact solution is A^{-1} grad L_query at the solver's own
    adapted weights, A its own (damped, here indefinite) system, averaged over tasks."""
    lam, damping = 2.0, 0.2
    model, solver = solver_for("imaml", lam=lam, damping=damping)
    expected, lowest = dense_exact(lam, damping)
    assert 1 + damping + lowest / lam < 0  # indefinite
    exact = exact_solution(solver, params64(model), tiny_batch(2), dense_max=dense_max,
                           iterations=400)  # fmt: skip
    assert rel_err(flat(exact.grad), expected) < 1e-6
    assert exact.residual < 1e-8
    assert exact.method == ("dense" if dense_max else "minres")
    if dense_max:
        assert exact.hessian_min == pytest.approx(lowest, rel=1e-8)


def test_verdicts_read_missing_and_non_finite_values_as_not_holding() -> None:
    good = {"diag_tasks": 4, "diag_stationarity": 0.01, "diag_convexity": 0.5,
            "diag_spectral_radius": 0.5, "diag_solve_residual": 0.001}  # fmt: skip
    checks = ("stationary", "convex", "solved")
    assert violations(good, checks) == []
    assert violations({**good, "diag_convexity": math.nan}, checks) == ["convex"]
    assert violations({**good, "diag_solve_residual": None}, checks) == ["solved"]
    assert violations({"diag_tasks": None}, checks) is None
    assert verdict("maml", [good]) is None  # not an implicit solver
    bad = {**good, "diag_stationarity": 0.9, "diag_convexity": -1.0}
    assert verdict("imaml", [good, bad, bad]) == "violated: not stationary 2/3, indefinite 2/3"


TINY = {"hidden": 8, "meta_steps": 2, "eval_every": 1, "diag_tasks": 2, "diag_lanczos_steps": 4}


@pytest.fixture(scope="module")
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize(
    ("solver", "batching"), [("imaml", "vmap"), ("neumann", "vmap"), ("imaml", "loop")]
)
def test_training_measures_at_evaluation_points_and_changes_nothing(
    omniglot: OmniglotImages, one_thread, solver: str, batching: str
) -> None:
    """Under either task mapping (the paper preset on a CPU maps tasks by a loop, whose
    autograd does not run under vmap: measuring there once failed the run)."""
    tiny = {**TINY, "batching": batching}
    measured = train(make_config(solver, "smoke", tiny), omniglot, test=False)
    plain = train(make_config(solver, "smoke", {**tiny, "diag_tasks": 0}), omniglot, test=False)
    assert measured.status == plain.status == "completed"
    assert [r["step"] for r in measured.curves] == [1, 2]
    for with_, without in zip(measured.curves, plain.curves):
        assert with_["diag_tasks"] == 2 and set(CURVE_COLUMNS) <= set(with_)
        assert not set(CURVE_COLUMNS) & set(without)
        for key in without:
            if key not in ("train_time_s", "ms_per_step"):
                assert with_[key] == without[key], key
    for name, p in plain.params.items():
        assert torch.equal(measured.params[name], p)


def test_other_solvers_are_not_measured(omniglot: OmniglotImages, one_thread) -> None:
    result = train(make_config("fomaml", "smoke", TINY), omniglot, test=False)
    assert result.status == "completed"
    assert not any(set(CURVE_COLUMNS) & set(r) for r in result.curves)


def diag_row(step: int, holds: bool) -> dict:
    return {
        "step": step,
        "val_query_acc_post": 40.0 + step,
        "diag_tasks": 8,
        "diag_lam": 2.0,
        "diag_stationarity": 0.01 if holds else 0.9,
        "diag_hessian_min": -1.0 if holds else -20.0,
        "diag_hessian_max": 50.0,
        "diag_convexity": 0.5 if holds else -9.0,
        "diag_indefinite_tasks": 0 if holds else 8,
        "diag_spectral_radius": 25.0,
        "diag_solve_iterations": 5.0 if holds else 2.5,
        "diag_negative_curvature": 0 if holds else 7,
        "diag_solve_residual": 1e-3 if holds else 0.8,
    }


def write_store(root: Path) -> ExperimentStore:
    store = ExperimentStore(root)
    for solver, overrides, holds in (
        ("imaml", {}, [False, False]),
        ("imaml", {"imaml.lam": 50.0}, [True, True]),
        ("maml", {}, None),
    ):
        config = make_config(solver, "smoke", overrides)
        curves = (
            [diag_row(s, h) for s, h in zip((2, 4), holds)]
            if holds
            else [{"step": s, "val_query_acc_post": 40.0 + s} for s in (2, 4)]
        )
        family = "second-order" if solver == "maml" else "implicit"
        store.write_run(RunResult(config=config, family=family, steps_done=4, curves=curves,
                                  test_acc_mean=50.0, test_acc_ci95=1.0))  # fmt: skip
    return store


def test_the_store_keeps_the_measurements_with_their_types(tmp_path: Path) -> None:
    curves = write_store(tmp_path / "e").read("curves")
    assert curves.schema.field("diag_tasks").type == pa.int64()
    assert curves.schema.field("diag_convexity").type == pa.float64()
    rows = curves.to_pylist()
    assert sorted(r["diag_negative_curvature"] for r in rows if r["solver"] == "imaml") == [
        0, 0, 7, 7
    ]  # fmt: skip
    assert all(r["diag_tasks"] is None for r in rows if r["solver"] == "maml")


def test_the_report_says_whether_the_assumptions_hold(tmp_path: Path) -> None:
    store = write_store(tmp_path / "e")
    runs, curves = store.read("runs"), store.read("curves")
    records = aggregate_runs(runs, curves)
    texts = {(r["solver"], r["options"]): r["assumptions"] for r in records}
    default = next(v for (s, o), v in texts.items() if s == "imaml" and "lam=2" in o)
    tuned = next(v for (s, o), v in texts.items() if s == "imaml" and "lam=50" in o)
    assert default == "violated: not stationary 2/2, indefinite 2/2, inaccurate solve 2/2"
    assert tuned == "hold (2 evaluations)"
    assert next(v for (s, _), v in texts.items() if s == "maml") is None
    csv = render_flat(records, "csv")
    assert "assumptions" in csv.splitlines()[0] and "hold (2 evaluations)" in csv
    console = Console(width=250, record=True)
    for table in summary_tables(records, runs):
        console.print(table)
    text = console.export_text()
    assert "assumptions violated:" in text and "indefinite 2/2" in text
    assert "assumptions:" in text and " hold (2 evaluations)" in text


def test_the_figure_of_the_assumptions(tmp_path: Path) -> None:
    from matplotlib import image

    from raybench.report.plots import PIXELS, figure_kinds, plot_experiment

    assert "assumptions" in figure_kinds()
    store = write_store(tmp_path / "e")
    (path,) = plot_experiment(store, tmp_path / "plots", kinds=["assumptions"])
    assert path.name == "assumptions.png"
    height, width = image.imread(path).shape[:2]
    assert (width, height) == PIXELS
    for solver, family in (("imaml", "implicit"), ("maml", "second-order")):
        unmeasured = ExperimentStore(tmp_path / solver)
        config = make_config(solver, "smoke")
        curves = [{"step": 2, "val_query_acc_post": 40.0}]
        unmeasured.write_run(RunResult(config=config, family=family, steps_done=4, curves=curves))
        skipped: list[str] = []
        written = plot_experiment(unmeasured, tmp_path / f"plots-{solver}",
                                  kinds=["assumptions"], on_skip=skipped.append)  # fmt: skip
        assert written == []
        # said for an implicit solver's run without measurements; not applicable to MAML
        said = [s for s in skipped if "no implicit solver" in s]
        assert len(said) == (1 if solver == "imaml" else 0), skipped
