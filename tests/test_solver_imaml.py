"""Implicit MAML: CG and MINRES against a dense solve (positive definite and indefinite
systems), the truncated CG iterate against its stopping rule, the proximal inner problem's
own steps, step size and tolerance against an independent loop, and the implicit gradient
against finite differences of the query loss at the inner optimum."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    WAYS,
    dense_truncated_cg,
    flat,
    params64,
    proximal_descent,
    query_gradient,
    rel_err,
    smooth_model,
    solver_for,
    support_hessian,
    tiny_batch,
    unflat,
)

from raybench.linalg import conjugate_gradient
from raybench.solvers.imaml import IMAML, IMAMLOptions
from raybench.tasks import TaskBatch


def test_cg_matches_a_dense_solve() -> None:
    model, solver = solver_for("imaml")
    params = params64(model)
    sx, sy, qx, qy = tiny_batch(1).task(0)
    fast, _ = solver.adapt_task(params, sx, sy, 2)
    fast = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
    hessian = support_hessian(model, fast, sx, sy)
    lam = max(1.0, 2 * -torch.linalg.eigvalsh(hessian).min().item())  # I + H/lam is SPD
    n = hessian.shape[0]
    rhs = torch.autograd.grad(
        F.cross_entropy(model(fast, qx), qy), list(fast.values()), allow_unused=False
    )
    rhs = dict(zip(fast, rhs))
    dense = torch.linalg.solve(torch.eye(n, dtype=hessian.dtype) + hessian / lam, flat(rhs))
    _, tuned = solver_for("imaml", lam=lam, cg_steps=n)
    assert rel_err(flat(tuned.implicit_grad(fast, sx, sy, rhs)), dense) < 1e-6
    # and CG converges: more iterations, smaller error
    errors = [
        rel_err(
            flat(solver_for("imaml", lam=lam, cg_steps=k)[1].implicit_grad(fast, sx, sy, rhs)),
            dense,
        )
        for k in (1, 5, 20)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_conjugate_gradient_on_a_known_system() -> None:
    g = torch.Generator().manual_seed(0)
    m = torch.randn(12, 12, generator=g, dtype=torch.float64)
    a = m @ m.T + torch.eye(12, dtype=torch.float64)
    b = {"x": torch.randn(12, generator=g, dtype=torch.float64)}
    x = conjugate_gradient(lambda v: {"x": a @ v["x"]}, b, iterations=40)
    assert rel_err(x["x"], torch.linalg.solve(a, b["x"])) < 1e-10


def inner_optimum(model, theta, x, y, lam: float, steps: int = 3000, lr: float = 0.1):
    """argmin_phi L_support(phi) + lam/2 ||phi - theta||^2 by plain gradient descent."""
    return proximal_descent(model, theta, x, y, lam, lr, steps)[0]


@pytest.mark.parametrize(
    ("options", "steps", "lr", "directions"),
    [
        # the inner problem solved by the training inner loop (inner_lr, inner_steps)
        ({}, 3000, 0.1, 3),
        # ... or by the proximal options, with the system solved by MINRES
        ({"proximal_steps": 400, "proximal_lr": 0.25, "linear_solver": "minres"}, 400, 0.25, 1),
    ],
)
def test_implicit_gradient_matches_finite_differences_at_the_inner_optimum(
    options, steps: int, lr: float, directions: int
) -> None:
    """With the inner problem solved to convergence, the implicit meta-gradient is the true
    gradient of L_query(phi*(theta)); checked along random directions."""
    model, theta = smooth_model()
    lam = 2.0
    inner = (
        {"inner_lr": 0.5, "inner_steps": 1} if options else {"inner_lr": lr, "inner_steps": steps}
    )
    solver = IMAML(model, **inner, options=IMAMLOptions(lam=lam, cg_steps=60, **options))
    raw = tiny_batch(1, shots=2, query=3, seed=4)
    # faint images keep the support Hessian small, so plain descent converges fast
    batch = TaskBatch(raw.support_x * 0.05, raw.support_y, raw.query_x * 0.05, raw.query_y)
    sx, sy, qx, qy = batch.task(0)
    grads, _ = solver.meta_grad(theta, batch)

    def outer(t: dict) -> float:
        phi = inner_optimum(model, t, sx, sy, lam, steps=steps, lr=lr)
        return F.cross_entropy(model(phi, qx), qy).item()

    g = torch.Generator().manual_seed(1)
    eps = 1e-5
    for _ in range(directions):
        direction = unflat(
            torch.randn(flat(theta).numel(), generator=g, dtype=torch.float64), theta
        )
        plus = {k: theta[k] + eps * direction[k] for k in theta}
        minus = {k: theta[k] - eps * direction[k] for k in theta}
        fd = (outer(plus) - outer(minus)) / (2 * eps)
        analytic = (flat(grads) * flat(direction)).sum().item()
        assert abs(fd - analytic) < 1e-6 * max(1.0, abs(fd)), (fd, analytic)


def test_no_graph_through_the_inner_loop() -> None:
    """The meta-gradient needs no autograd graph of the adaptation: inputs that require
    grad produce outputs that do not depend on them through a graph."""
    model, solver = solver_for("imaml")
    params = {k: v.requires_grad_(True) for k, v in params64(model).items()}
    grads, _ = solver.meta_grad(params, TaskBatch(*tiny_batch(2)))
    assert all(g.grad_fn is None for g in grads.values())
    assert WAYS == 3


def test_cg_stops_at_negative_curvature_instead_of_diverging() -> None:
    """On an indefinite system CG keeps the last iterate from positive-curvature
    directions (truncated CG) rather than stepping along a negative-curvature one."""
    a = torch.diag(torch.tensor([2.0, 1.0, -1.0], dtype=torch.float64))
    b = {"x": torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)}
    x = conjugate_gradient(lambda v: {"x": a @ v["x"]}, b, iterations=10)["x"]
    assert torch.isfinite(x).all()
    # p0 = b has curvature b^T A b = 2 > 0: one step along b, then the iteration stops
    assert torch.allclose(x, b["x"] * (3.0 / 2.0))


@functools.cache
def indefinite_setting(seed: int = 0):
    """A task, the adapted weights of iMAML's default inner loop, the support Hessian there
    and a lam that makes I + H/lam indefinite (half of minus its smallest eigenvalue)."""
    model, solver = solver_for("imaml")
    params = params64(model, seed)
    sx, sy, qx, qy = tiny_batch(1, seed=seed).task(0)
    fast, _ = solver.adapt_task(params, sx, sy, 2)
    hessian = support_hessian(model, fast, sx, sy)
    smallest = torch.linalg.eigvalsh(hessian).min().item()
    assert smallest < 0  # the regime under test: a support Hessian with negative curvature
    return model, fast, (sx, sy), hessian, query_gradient(model, fast, qx, qy), -smallest / 2


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_minres_solves_the_indefinite_system_like_a_dense_solve(damping: float) -> None:
    _, fast, (sx, sy), hessian, rhs, lam = indefinite_setting()
    n = hessian.shape[0]
    matrix = (1 + damping) * torch.eye(n, dtype=hessian.dtype) + hessian / lam
    assert torch.linalg.eigvalsh(matrix).min() < 0  # indefinite
    dense = torch.linalg.solve(matrix, rhs)
    _, solver = solver_for("imaml", lam=lam, damping=damping, linear_solver="minres", cg_steps=120)
    g = flat(solver.implicit_grad(fast, sx, sy, unflat(rhs, fast)))
    assert rel_err(g, dense) < 1e-6


def test_truncated_cg_in_the_indefinite_regime_returns_its_documented_iterate() -> None:
    """iMAML's CG on the indefinite system stops at the first direction of non-positive
    curvature and returns the iterate before it: the textbook loop's answer, and not the
    solution of the system."""
    _, fast, (sx, sy), hessian, rhs, lam = indefinite_setting()
    matrix = torch.eye(hessian.shape[0], dtype=hessian.dtype) + hessian / lam
    expected, steps, stopped = dense_truncated_cg(matrix, rhs, 50)
    assert stopped
    _, solver = solver_for("imaml", lam=lam, cg_steps=50)
    g, info = solver.solve(solver.support_hvp(fast, sx, sy), unflat(rhs, fast))
    assert info.negative_curvature.item() and info.iterations.item() == steps
    assert rel_err(flat(g), expected) < 1e-8 if steps else flat(g).norm() == 0
    assert rel_err(flat(g), torch.linalg.solve(matrix, rhs)) > 0.05


def test_proximal_steps_and_step_size_replace_the_inner_loop_s() -> None:
    """proximal_steps and proximal_lr, not inner_steps and inner_lr, drive the adaptation
    of the meta-gradient, as an independent loop computes it."""
    model, solver = solver_for("imaml", lam=2.0, proximal_steps=7, proximal_lr=0.05)
    params, batch = params64(model), tiny_batch(1)
    sx, sy, _, _ = batch.task(0)
    fast, _ = solver.inner_solution(params, sx, sy)
    expected, taken = proximal_descent(model, params, sx, sy, lam=2.0, lr=0.05, steps=7)
    assert taken == 7 and rel_err(flat(fast), flat(expected)) < 1e-12
    _, same = solver_for("imaml", lam=2.0, inner_steps=7, inner_lr=0.05)
    assert torch.equal(
        flat(solver.meta_grad(params, batch)[0]), flat(same.meta_grad(params, batch)[0])
    )


def test_proximal_tolerance_stops_each_task_by_its_own_residual() -> None:
    """Under vmap every task takes steps until its proximal gradient falls to tol of its
    starting norm, then stays; the steps cap the loop."""
    lam, lr, tol = 2.0, 0.2, 0.3
    model, solver = solver_for(
        "imaml", lam=lam, proximal_steps=30, proximal_lr=lr, proximal_tol=tol
    )
    params, batch = params64(model), tiny_batch(3, seed=2)
    fast, _ = solver.adapt(params, batch.support_x, batch.support_y, 30)
    taken = []
    for b in range(3):
        sx, sy, _, _ = batch.task(b)
        expected, steps = proximal_descent(model, params, sx, sy, lam, lr, 30, tol=tol)
        taken.append(steps)
        mine = {k: v[b] for k, v in fast.items()}
        assert rel_err(flat(mine), flat(expected)) < 1e-10, b
    assert all(0 < t < 30 for t in taken) and len(set(taken)) > 1, taken
