"""What the implicit solvers share: the linear system of a proximal inner problem.

At a solution ``phi*`` of the proximal inner problem

    min_phi  F(phi) = L_support(phi) + lam/2 ||phi - theta||^2,

the implicit function theorem gives ``d phi*/d theta = (I + H/lam)^{-1}``, ``H`` the support
Hessian at ``phi*``, so the meta-gradient ``g`` solves ``(I + H/lam) g = grad L_query(phi*)``.
iMAML solves it by CG or MINRES (``lam`` its proximal strength), the Neumann series by a
truncated power series (``lam = 1/alpha``). The answer is the meta-gradient only if its
premises hold: ``phi`` is stationary for ``F``, ``F`` is strongly convex there (``I + H/lam``
positive definite), and the linear solve is accurate; :mod:`raybench.assumptions` measures
each. A subclass states how ``phi`` is found (:meth:`inner_solution`) and how the system is
solved (:meth:`solve`); what system it is, and the meta-gradient, are common.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from raybench.linalg import MatVec, SolveInfo
from raybench.models import Params
from raybench.solvers.base import Loss, Metrics, Solver
from raybench.tasks import TaskBatch


class ImplicitSolver(Solver):
    """A meta-gradient from the implicit function theorem on a proximal inner problem."""

    family = "implicit"
    # What the answer rests on, as keys of ``raybench.assumption_checks.CHECKS``.
    assumptions: ClassVar[tuple[str, ...]] = ("stationary", "convex", "solved")
    # Options that change only how the system is solved, not which system it is.
    solve_options: ClassVar[tuple[str, ...]] = ()
    # Whether ``solve`` stops at negative curvature (truncated CG).
    stops_at_negative_curvature: ClassVar[bool] = False

    @property
    @abstractmethod
    def lam(self) -> float:
        """Proximal strength of the inner problem whose Jacobian the system is."""

    @property
    def damping(self) -> float:
        """Added to the system's diagonal: ``(1 + damping) I + H/lam``."""
        return 0.0

    @property
    def uses_hessian(self) -> bool:
        return True

    @abstractmethod
    def inner_solution(self, params: Params, x: Tensor, y: Tensor) -> tuple[Params, Loss]:
        """One task's adapted weights as the meta-gradient uses them, and the support
        (loss, logits) at ``params``."""

    @abstractmethod
    def solve(self, hvp: MatVec | None, rhs: Params) -> tuple[Params, SolveInfo]:
        """The solver's approximation of ``system(hvp)^{-1} rhs``, and how it ended;
        ``hvp`` is ``None`` when :attr:`uses_hessian` is false."""

    def system(self, hvp: MatVec) -> MatVec:
        """``v -> (1 + damping) v + H v / lam``."""
        scale, lam = 1 + self.damping, self.lam

        def apply(v: Params) -> Params:
            hv = hvp(v)
            return {k: scale * v[k] + hv[k] / lam for k in v}

        return apply

    def inner_gradient(self, params: Params, fast: Params, x: Tensor, y: Tensor) -> Params:
        """Gradient of the proximal objective ``F`` at ``fast`` (``theta = params``)."""
        grads, _ = self.support_grad(fast, x, y)
        return {k: grads[k] + self.lam * (fast[k] - params[k]) for k in grads}

    def support_hvp(self, fast: Params, x: Tensor, y: Tensor) -> MatVec:
        return self.hessian_vector_product(self.model.loss, fast, x, y)

    def task_meta_grad(
        self, params: Params, sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor
    ) -> tuple[Params, Params, Loss, Loss]:
        fast, support_before = self.inner_solution(params, sx, sy)
        fast = {k: v.detach() for k, v in fast.items()}
        query_grad, query_after = self.grad_and_value(self.model.loss, has_aux=True)(fast, qx, qy)
        hvp = self.support_hvp(fast, sx, sy) if self.uses_hessian else None
        g, _ = self.solve(hvp, query_grad)
        return g, fast, support_before, query_after

    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        with torch.no_grad():
            per_task, fast, support_before, query_after = self.map(
                self.task_meta_grad, in_dims=(None, 0, 0, 0, 0)
            )(params, *batch)
        grads = {k: g.mean(0) for k, g in per_task.items()}
        return grads, self.metrics(params, fast, batch, support_before, query_after)
