"""Reptile's pseudo-gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import INNER_LR, flat, params64, rel_err, sgd, solver_for, tiny_batch

pytestmark = pytest.mark.usefixtures("both_batchings")


def test_one_step_is_inner_lr_times_the_support_gradient() -> None:
    model, solver = solver_for("reptile", inner_steps=1)
    params, batch = params64(model), tiny_batch(3)
    grads, _ = solver.meta_grad(params, batch)
    expected = 0
    for b in range(3):
        sx, sy, _, _ = batch.task(b)
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        g = torch.autograd.grad(F.cross_entropy(model(p, sx), sy), list(p.values()))
        expected = expected + torch.cat([x.reshape(-1) for x in g])
    assert rel_err(flat(grads), INNER_LR * expected / 3) < 1e-12


def test_k_steps_is_theta_minus_adapted_weights() -> None:
    model, solver = solver_for("reptile", inner_steps=4)
    params, batch = params64(model), tiny_batch(2)
    grads, _ = solver.meta_grad(params, batch)
    phis = [sgd(model, params, *batch.task(b)[:2], steps=4) for b in range(2)]
    expected = sum(flat(params) - flat(phi) for phi in phis) / 2
    assert rel_err(flat(grads), expected) < 1e-12
