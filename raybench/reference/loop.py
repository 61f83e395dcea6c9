"""MAML and FOMAML meta-gradients with a Python loop over tasks and ``torch.autograd.grad``.

Deliberately independent of ``raybench.solvers``: it shares only the model, so agreement
between the two is evidence, not tautology.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raybench.models import FunctionalModel, Params
from raybench.tasks import TaskBatch


def loop_meta_grad(
    model: FunctionalModel,
    params: Params,
    batch: TaskBatch,
    *,
    inner_lr: float,
    inner_steps: int,
    first_order: bool = False,
) -> Params:
    """Average over tasks of d L_query(phi_K) / d theta (or / d phi_K when first order)."""
    names = list(params)
    theta = [params[n].detach().clone().requires_grad_(True) for n in names]
    total = [torch.zeros_like(t) for t in theta]
    for b in range(len(batch)):
        sx, sy, qx, qy = batch.task(b)
        fast = list(theta)
        for _ in range(inner_steps):
            loss = F.cross_entropy(model(dict(zip(names, fast)), sx), sy)
            grads = torch.autograd.grad(loss, fast, create_graph=not first_order)
            fast = [w - inner_lr * g for w, g in zip(fast, grads)]
        if first_order:
            fast = [w.detach().requires_grad_(True) for w in fast]
        query_loss = F.cross_entropy(model(dict(zip(names, fast)), qx), qy)
        grads = torch.autograd.grad(query_loss, fast if first_order else theta)
        for acc, g in zip(total, grads):
            acc += g.detach()
    return {n: g / len(batch) for n, g in zip(names, total)}
