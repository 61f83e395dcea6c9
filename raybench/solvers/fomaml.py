"""First-order MAML: the query-loss gradient at the adapted weights, no graph through adaptation."""

from __future__ import annotations

import torch

from raybench.models import Params
from raybench.solvers.base import Metrics, Solver, batch_mean, register
from raybench.tasks import TaskBatch


@register
class FOMAML(Solver):
    """Drops the Hessian terms of equation (2): cheap, and memory flat in the inner steps."""

    name = "fomaml"
    family = "first-order"
    compilable = True

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        with torch.no_grad():
            fast, support_before = self.adapt(params, batch.support_x, batch.support_y)
        query_grad = self.grad_and_value(self.model.loss, has_aux=True)
        per_task, query_after = self.map(query_grad, compiled=True)(
            fast, batch.query_x, batch.query_y
        )
        return batch_mean(per_task), self.metrics(params, fast, batch, support_before, query_after)
