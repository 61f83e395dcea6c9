"""Penalty method: lam = 0 is MAML; its gradient matches finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    INNER_LR,
    INNER_STEPS,
    finite_difference,
    flat,
    params64,
    rel_err,
    solver_for,
    tiny_batch,
)


@pytest.mark.usefixtures("both_batchings")
def test_zero_lambda_is_maml_exactly() -> None:
    model, penalty = solver_for("penalty", lam=0.0)
    _, maml = solver_for("maml")
    params, batch = params64(model), tiny_batch(3)
    assert (
        rel_err(flat(penalty.meta_grad(params, batch)[0]), flat(maml.meta_grad(params, batch)[0]))
        < 1e-14
    )


def penalised_objective(model, params, batch, lam: float) -> float:
    """Mean over tasks of L_query(phi_K) + lam ||grad L_support(phi_K)||^2, plain autograd."""
    names = list(params)
    total = 0.0
    for b in range(len(batch)):
        sx, sy, qx, qy = batch.task(b)
        fast = [params[n].clone().requires_grad_(True) for n in names]
        for _ in range(INNER_STEPS):
            grads = torch.autograd.grad(
                F.cross_entropy(model(dict(zip(names, fast)), sx), sy), fast
            )
            fast = [(w - INNER_LR * g).detach().requires_grad_(True) for w, g in zip(fast, grads)]
        grads = torch.autograd.grad(F.cross_entropy(model(dict(zip(names, fast)), sx), sy), fast)
        with torch.no_grad():
            query = F.cross_entropy(model(dict(zip(names, fast)), qx), qy)
        total += (query + lam * sum(g.square().sum() for g in grads)).item()
    return total / len(batch)


def test_gradient_matches_finite_differences() -> None:
    """On both batchings (vmap and the task loop with native batch norm)."""
    lam = 0.5
    model, _ = solver_for("penalty", lam=lam)
    params, batch = params64(model), tiny_batch(2)
    fd = finite_difference(lambda p: penalised_objective(model, p, batch, lam), params)
    for batching in ("vmap", "loop"):
        _, solver = solver_for("penalty", lam=lam, batching=batching)
        grads, _ = solver.meta_grad(params, batch)
        assert rel_err(flat(grads), fd) < 1e-6, batching
    # the penalty changes the gradient: it is not MAML's
    _, maml = solver_for("maml")
    assert rel_err(flat(maml.meta_grad(params, batch)[0]), fd) > 1e-3
