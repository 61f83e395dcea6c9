"""Neumann series: zero terms is FOMAML; more terms converge to the dense solve."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    INNER_STEPS,
    flat,
    params64,
    rel_err,
    sgd,
    solver_for,
    support_hessian,
    tiny_batch,
)


@pytest.mark.usefixtures("both_batchings")
def test_zero_terms_is_fomaml() -> None:
    model, neumann = solver_for("neumann", terms=0)
    _, fomaml = solver_for("fomaml")
    params, batch = params64(model), tiny_batch(3)
    assert (
        rel_err(flat(neumann.meta_grad(params, batch)[0]), flat(fomaml.meta_grad(params, batch)[0]))
        < 1e-12
    )


def test_more_terms_converge_to_the_dense_solve() -> None:
    model, _ = solver_for("neumann")
    params, batch = params64(model), tiny_batch(1)
    sx, sy, qx, qy = batch.task(0)
    fast = sgd(model, params, sx, sy, INNER_STEPS)
    hessian = support_hessian(model, fast, sx, sy)
    alpha = 0.5 / torch.linalg.eigvalsh(hessian).abs().max().item()  # alpha ||H|| = 1/2
    fast_req = {k: v.clone().requires_grad_(True) for k, v in fast.items()}
    v = torch.autograd.grad(F.cross_entropy(model(fast_req, qx), qy), list(fast_req.values()))
    v = torch.cat([x.reshape(-1) for x in v])
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype)
    dense = torch.linalg.solve(eye + alpha * hessian, v)
    errors = []
    for terms in (1, 4, 16, 60):
        _, solver = solver_for("neumann", terms=terms, alpha=alpha)
        errors.append(rel_err(flat(solver.meta_grad(params, batch)[0]), dense))
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-12 * 1e6  # 0.5^60: converged to float64 precision
    # and the series is the one of the listing: sum_j (-alpha H)^j v
    _, three = solver_for("neumann", terms=3, alpha=alpha)
    h = -alpha * hessian
    series = v + h @ v + h @ h @ v + h @ h @ h @ v
    assert rel_err(flat(three.meta_grad(params, batch)[0]), series) < 1e-10
