"""Implicit MAML: the meta-gradient of a proximal inner problem by CG (or MINRES)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from raybench.config import Bound, setting
from raybench.linalg import MatVec, SolveInfo, minres, tree_norm, truncated_cg
from raybench.models import Params
from raybench.solvers._implicit import ImplicitSolver
from raybench.solvers.base import Loss, register, sgd_step

LINEAR_SOLVERS = ("cg", "minres")


@dataclass(frozen=True)
class IMAMLOptions:
    lam: float = setting(2.0, Bound(float, 0, 1e6, low_open=True, help="proximal strength"))
    cg_steps: int = setting(
        5, Bound(int, 1, 1000, help="iterations of the linear solver (CG or MINRES)")
    )
    damping: float = setting(0.0, Bound(float, 0, 1e6, help="added to the system's diagonal"))
    linear_solver: str = setting(
        "cg",
        Bound(
            str,
            choices=LINEAR_SOLVERS,
            help="cg (truncated at negative curvature: needs I + H/lam positive definite) "
            "or minres (any symmetric system)",
        ),
    )
    proximal_steps: int | None = setting(
        None,
        Bound(int, 0, 10000, optional=True, help="gradient steps on the proximal inner "
              "problem in training (default: inner_steps)"),
    )  # fmt: skip
    proximal_lr: float | None = setting(
        None,
        Bound(float, 0, 10, low_open=True, optional=True,
              help="step size of the proximal inner problem (default: inner_lr)"),
    )  # fmt: skip
    proximal_tol: float = setting(
        0.0,
        Bound(float, 0, 1, help="stop the proximal steps once the gradient of the proximal "
              "objective is this fraction of its norm at theta (0: take them all)"),
    )  # fmt: skip


@register
class IMAML(ImplicitSolver):
    """Rajeswaran et al. (2019). The inner loop minimises L_support(phi) +
    lam/2 ||phi - theta||^2; at its solution d phi / d theta = (I + H/lam)^{-1}, so the
    meta-gradient g solves (I + H/lam) g = grad L_query(phi), from Hessian-vector products
    alone. Nothing is differentiated through the inner loop: memory is flat in the number of
    inner steps. The theory needs lam above minus the smallest eigenvalue of H and the inner
    problem solved; CG needs the system positive definite, MINRES does not."""

    name = "imaml"
    Options = IMAMLOptions
    solve_options = ("cg_steps", "linear_solver")
    defaults_from: ClassVar[dict[str, str]] = {
        "proximal_steps": "inner_steps",
        "proximal_lr": "inner_lr",
    }

    @property
    def lam(self) -> float:
        return self.options.lam

    @property
    def damping(self) -> float:
        return self.options.damping

    @property
    def stops_at_negative_curvature(self) -> bool:  # type: ignore[override]
        return self.options.linear_solver == "cg"

    @property
    def proximal_steps(self) -> int:
        steps = self.options.proximal_steps
        return self.inner_steps if steps is None else steps

    @property
    def proximal_lr(self) -> float:
        lr = self.options.proximal_lr
        return self.inner_lr if lr is None else lr

    def adapt_task(self, params: Params, x: Tensor, y: Tensor, steps: int) -> tuple[Params, Loss]:
        """Gradient descent on the proximal objective, from theta, with the proximal step
        size; with ``proximal_tol``, a task whose gradient has fallen to that fraction of
        its starting norm stays where it is (the steps still run: no data-dependent flow)."""
        lam, tol = self.options.lam, self.options.proximal_tol
        fast = params
        before: Loss | None = None
        start: Tensor | None = None
        active: Tensor | None = None
        for _ in range(steps):
            grads, (loss, logits) = self.support_grad(fast, x, y)
            if before is None:
                before = (loss, logits)
            grads = {k: grads[k] + lam * (fast[k] - params[k]) for k in grads}
            if tol > 0:
                norm = tree_norm(grads)
                start = norm if start is None else start
                active = norm > tol * start if active is None else active & (norm > tol * start)
                grads = {k: torch.where(active, g, torch.zeros_like(g)) for k, g in grads.items()}
            fast = sgd_step(fast, grads, self.proximal_lr)
        if before is None:
            before = self.model.loss(params, x, y)
        return fast, before

    def inner_solution(self, params: Params, x: Tensor, y: Tensor) -> tuple[Params, Loss]:
        return self.adapt_task(params, x, y, self.proximal_steps)

    def solve(self, hvp: MatVec | None, rhs: Params) -> tuple[Params, SolveInfo]:
        assert hvp is not None
        if self.options.linear_solver == "minres":
            return minres(self.system(hvp), rhs, self.options.cg_steps)
        return truncated_cg(self.system(hvp), rhs, self.options.cg_steps)

    def implicit_grad(self, fast: Params, x: Tensor, y: Tensor, rhs: Params) -> Params:
        """Solve (I + H/lam + damping I) g = rhs for one task, H the support Hessian at fast."""
        return self.solve(self.support_hvp(fast, x, y), rhs)[0]
