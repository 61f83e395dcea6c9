"""Penalty method: MAML's objective plus lam * ||grad L_support(phi_K)||^2, unrolled."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from raybench.config import Bound, setting
from raybench.models import Params
from raybench.solvers.base import Loss, Metrics, Solver, register
from raybench.tasks import TaskBatch


@dataclass(frozen=True)
class PenaltyOptions:
    lam: float = setting(0.1, Bound(float, 0, 1e6, help="weight of the optimality penalty"))


@register
class Penalty(Solver):
    """The report's section 2.2.6: differentiate L_query(phi_K(theta)) +
    lam ||grad_phi L_support(phi_K)||^2 through the unrolled inner loop, penalising an
    adaptation that has not reached a stationary point of the support loss. With lam = 0
    it is exactly MAML; memory grows with inner steps like MAML's."""

    name = "penalty"
    family = "penalty"
    Options = PenaltyOptions

    def objective(
        self, p: Params, sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor
    ) -> tuple[Tensor, tuple[Params, Loss, Loss]]:
        """One task's penalised objective, with what the metrics need."""
        fast, support_before = self.adapt_task(p, sx, sy, self.inner_steps)
        loss, logits = self.model.loss(fast, qx, qy)
        total = loss
        if self.options.lam:
            g = self.grad(lambda q: self.model.loss(q, sx, sy)[0])(fast)
            total = loss + self.options.lam * sum(v.square().sum() for v in g.values())
        return total, (fast, support_before, (loss, logits))

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        grads, (fast, support_before, query_after) = self.batch_grad(self.objective, params, batch)
        return grads, self.metrics(params, fast, batch, support_before, query_after)
