"""Explicit second-order MAML: differentiate the query loss through the unrolled inner loop."""

from __future__ import annotations

from torch import Tensor

from raybench.models import Params
from raybench.solvers.base import Loss, Metrics, Solver, register
from raybench.tasks import TaskBatch


@register
class MAML(Solver):
    """Keeps the graph of every inner step, so the meta-gradient carries the exact
    (I - alpha H) products of the report's equation (2); memory grows with inner steps."""

    name = "maml"
    family = "second-order"
    compilable = True

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        def task_objective(
            p: Params, sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor
        ) -> tuple[Tensor, tuple[Params, Loss, Loss]]:
            fast, support_before = self.adapt_task(p, sx, sy, self.inner_steps)
            loss, logits = self.model.loss(fast, qx, qy)
            return loss, (fast, support_before, (loss, logits))

        grads, (fast, support_before, query_after) = self.batch_grad(task_objective, params, batch)
        return grads, self.metrics(params, fast, batch, support_before, query_after)
