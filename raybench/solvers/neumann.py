"""Neumann-series implicit gradient: (I + alpha H)^{-1} v by a truncated series."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from raybench.config import Bound, setting
from raybench.linalg import MatVec, SolveInfo, neumann_series
from raybench.models import Params
from raybench.solvers._implicit import ImplicitSolver
from raybench.solvers.base import Loss, register


@dataclass(frozen=True)
class NeumannOptions:
    terms: int = setting(3, Bound(int, 0, 1000, help="series terms k beyond the first"))
    alpha: float | None = setting(
        None,
        Bound(float, 0, 10, low_open=True, optional=True, help="series step (default: inner_lr)"),
    )


@register
class Neumann(ImplicitSolver):
    """The report's listing 4 (after Lorraine et al., 2020): plain SGD adaptation, then
    g = sum_{j=0..k} (-alpha H)^j grad L_query(phi) with H the support Hessian at phi and
    alpha the inner learning rate unless set. With k = 0 it is exactly FOMAML.

    The series tends to (I + alpha H)^{-1} grad L_query, the implicit meta-gradient of the
    proximal inner problem with lam = 1/alpha, when the spectral radius of alpha H is below
    1; the inner loop is plain SGD, which does not solve that problem."""

    name = "neumann"
    Options = NeumannOptions
    assumptions = ("stationary", "contraction", "solved")
    solve_options = ("terms",)
    defaults_from: ClassVar[dict[str, str]] = {"alpha": "inner_lr"}

    @property
    def alpha(self) -> float:
        return self.inner_lr if self.options.alpha is None else self.options.alpha

    @property
    def lam(self) -> float:
        return 1 / self.alpha

    @property
    def uses_hessian(self) -> bool:
        return self.options.terms > 0

    def inner_solution(self, params: Params, x: Tensor, y: Tensor) -> tuple[Params, Loss]:
        return self.adapt_task(params, x, y, self.inner_steps)

    def system(self, hvp: MatVec) -> MatVec:
        """``v -> v + alpha H v``, the system the series inverts."""
        alpha = self.alpha

        def apply(v: Params) -> Params:
            hv = hvp(v)
            return {k: v[k] + alpha * hv[k] for k in v}

        return apply

    def solve(self, hvp: MatVec | None, rhs: Params) -> tuple[Params, SolveInfo]:
        first = next(iter(rhs.values()))
        terms = torch.full((), float(self.options.terms), dtype=first.dtype, device=first.device)
        info = SolveInfo(terms, torch.zeros((), dtype=torch.bool, device=first.device))
        if hvp is None:
            return dict(rhs), info
        return neumann_series(hvp, rhs, self.options.terms, self.alpha), info
