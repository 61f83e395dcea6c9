"""Neumann-series implicit gradient: (I + alpha H)^{-1} v by a truncated series."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import grad_and_value

from raybench.config import Bound, setting
from raybench.linalg import hessian_vector_product, neumann_series
from raybench.models import Params
from raybench.solvers.base import Loss, Metrics, Solver, register
from raybench.tasks import TaskBatch


@dataclass(frozen=True)
class NeumannOptions:
    terms: int = setting(3, Bound(int, 0, 1000, help="series terms k beyond the first"))
    alpha: float | None = setting(
        None,
        Bound(float, 0, 10, low_open=True, optional=True, help="series step (default: inner_lr)"),
    )


@register
class Neumann(Solver):
    """The report's listing 4 (after Lorraine et al., 2020): plain SGD adaptation, then
    g = sum_{j=0..k} (-alpha H)^j grad L_query(phi) with H the support Hessian at phi and
    alpha the inner learning rate unless set. With k = 0 it is exactly FOMAML."""

    name = "neumann"
    family = "implicit"
    Options = NeumannOptions

    @property
    def alpha(self) -> float:
        return self.inner_lr if self.options.alpha is None else self.options.alpha

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        def one(
            sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor
        ) -> tuple[Params, Params, Loss, Loss]:
            fast, support_before = self.adapt_task(params, sx, sy, self.inner_steps)
            query_grad, query_after = grad_and_value(self.model.loss, has_aux=True)(fast, qx, qy)
            if self.options.terms == 0:
                return query_grad, fast, support_before, query_after
            hvp = hessian_vector_product(self.model.loss, fast, sx, sy)
            g = neumann_series(hvp, query_grad, self.options.terms, self.alpha)
            return g, fast, support_before, query_after

        with torch.no_grad():
            per_task, fast, support_before, query_after = self.map(one)(*batch)
        grads = {k: g.mean(0) for k, g in per_task.items()}
        return grads, self.metrics(params, fast, batch, support_before, query_after)
