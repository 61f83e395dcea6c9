"""MAML and FOMAML meta-gradients with a Python loop over tasks and ``torch.autograd.grad``.

Deliberately independent of ``raybench.solvers``: it shares only the model, so agreement
between the two is evidence, not tautology.
"""

from __future__ import annotations

from typing import Any

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


class LoopReference:
    """The reference loop behind the solver interface, so benchmarks time it exactly as
    they time the vectorised solver it stands beside (MAML or FOMAML)."""

    def __init__(self, solver: Any) -> None:
        if solver.name not in ("maml", "fomaml"):
            raise ValueError(f"no reference loop for {solver.name!r}")
        self.solver = solver
        self.name = f"{solver.name}-loop"
        self.family = solver.family

    def init_params(self, *args: Any) -> Params:
        return self.solver.init_params(*args)

    def train_batch(self, *args: Any) -> Any:
        return self.solver.train_batch(*args)

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, dict]:
        grads = loop_meta_grad(
            self.solver.model,
            params,
            batch,
            inner_lr=self.solver.inner_lr,
            inner_steps=self.solver.inner_steps,
            first_order=self.solver.name == "fomaml",
        )
        return grads, {}
