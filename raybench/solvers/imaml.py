"""Implicit MAML: the meta-gradient of a proximal inner problem by conjugate gradient."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import grad_and_value

from raybench.config import Bound, setting
from raybench.linalg import conjugate_gradient, hessian_vector_product
from raybench.models import Params
from raybench.solvers.base import Loss, Metrics, Solver, register, sgd_step
from raybench.tasks import TaskBatch


@dataclass(frozen=True)
class IMAMLOptions:
    lam: float = setting(2.0, Bound(float, 0, 1e6, low_open=True, help="proximal strength"))
    cg_steps: int = setting(5, Bound(int, 1, 1000, help="conjugate-gradient iterations"))
    damping: float = setting(0.0, Bound(float, 0, 1e6, help="added to the system's diagonal"))


@register
class IMAML(Solver):
    """Rajeswaran et al. (2019). The inner loop minimises L_support(phi) +
    lam/2 ||phi - theta||^2; at its solution d phi / d theta = (I + H/lam)^{-1}, so the
    meta-gradient g solves (I + H/lam) g = grad L_query(phi), by CG from Hessian-vector
    products alone. Nothing is differentiated through the inner loop: memory is flat in the
    number of inner steps."""

    name = "imaml"
    family = "implicit"
    Options = IMAMLOptions

    def adapt_task(self, params: Params, x: Tensor, y: Tensor, steps: int) -> tuple[Params, Loss]:
        """Gradient descent on the proximally regularised support loss, from theta."""
        lam = self.options.lam
        fast = params
        before: Loss | None = None
        for _ in range(steps):
            grads, (loss, logits) = self.support_grad(fast, x, y)
            if before is None:
                before = (loss, logits)
            grads = {k: grads[k] + lam * (fast[k] - params[k]) for k in grads}
            fast = sgd_step(fast, grads, self.inner_lr)
        if before is None:
            before = self.model.loss(params, x, y)
        return fast, before

    def implicit_grad(self, fast: Params, x: Tensor, y: Tensor, rhs: Params) -> Params:
        """Solve (I + H/lam + damping I) g = rhs for one task, H the support Hessian at fast."""
        opts = self.options
        hvp = hessian_vector_product(self.model.loss, fast, x, y)

        def system(v: Params) -> Params:
            hv = hvp(v)
            return {k: (1 + opts.damping) * v[k] + hv[k] / opts.lam for k in v}

        return conjugate_gradient(system, rhs, opts.cg_steps)

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        def one(
            sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor
        ) -> tuple[Params, Params, Loss, Loss]:
            fast, support_before = self.adapt_task(params, sx, sy, self.inner_steps)
            fast = {k: v.detach() for k, v in fast.items()}
            query_grad, query_after = grad_and_value(self.model.loss, has_aux=True)(fast, qx, qy)
            g = self.implicit_grad(fast, sx, sy, query_grad)
            return g, fast, support_before, query_after

        with torch.no_grad():
            per_task, fast, support_before, query_after = self.map(one)(*batch)
        grads = {k: g.mean(0) for k, g in per_task.items()}
        return grads, self.metrics(params, fast, batch, support_before, query_after)
