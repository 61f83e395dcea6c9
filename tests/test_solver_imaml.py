"""Implicit MAML: CG against a dense solve, and the implicit gradient against finite
differences of the query loss at the inner optimum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import (
    WAYS,
    flat,
    params64,
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
    names = list(theta)
    phi = [theta[n].clone().requires_grad_(True) for n in names]
    for _ in range(steps):
        loss = F.cross_entropy(model(dict(zip(names, phi)), x), y)
        grads = torch.autograd.grad(loss, phi)
        phi = [
            (p - lr * (g + lam * (p - theta[n]))).detach().requires_grad_(True)
            for p, g, n in zip(phi, grads, names)
        ]
    return {n: p.detach() for n, p in zip(names, phi)}


def test_implicit_gradient_matches_finite_differences_at_the_inner_optimum() -> None:
    """With the inner problem solved to convergence, the implicit meta-gradient is the true
    gradient of L_query(phi*(theta)); checked along random directions."""
    model, theta = smooth_model()
    lam = 2.0
    solver = IMAML(
        model, inner_lr=0.1, inner_steps=3000, options=IMAMLOptions(lam=lam, cg_steps=60)
    )
    raw = tiny_batch(1, shots=2, query=3, seed=4)
    # faint images keep the support Hessian small, so plain descent converges fast
    batch = TaskBatch(raw.support_x * 0.05, raw.support_y, raw.query_x * 0.05, raw.query_y)
    sx, sy, qx, qy = batch.task(0)
    grads, _ = solver.meta_grad(theta, batch)

    def outer(t: dict) -> float:
        phi = inner_optimum(model, t, sx, sy, lam)
        return F.cross_entropy(model(phi, qx), qy).item()

    g = torch.Generator().manual_seed(1)
    eps = 1e-5
    for _ in range(3):
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
