"""Reptile: the outer "gradient" is theta - phi, the step from the start to the adapted weights."""

from __future__ import annotations

import torch

from raybench.models import Params
from raybench.solvers.base import Metrics, Solver, batch_mean, register
from raybench.tasks import TaskBatch


@register
class Reptile(Solver):
    """Moves theta towards each task's adapted weights (Nichol et al., 2018). The
    pseudo-gradient uses the support set only; its scale, and so the outer learning rate,
    is the knob the report's sensitivity study turns."""

    name = "reptile"
    family = "first-order"
    compilable = True

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        with torch.no_grad():
            fast, support_before = self.adapt(params, batch.support_x, batch.support_y)
            pseudo = batch_mean({k: params[k] - fast[k] for k in params})
        return pseudo, self.metrics(params, fast, batch, support_before)
