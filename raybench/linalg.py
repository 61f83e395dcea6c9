"""Linear solvers over parameter dicts: pure functions ``(matvec, b) -> x``.

They know nothing about meta-learning: a solver states the system (which matrix-vector
product, which right-hand side) and picks how to solve it. No data-dependent Python control
flow, so they run unchanged under ``torch.func.vmap`` (one system per task).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, vjp

from raybench.models import Params

MatVec = Callable[[Params], Params]


def tree_dot(a: Params, b: Params) -> Tensor:
    return sum((a[k] * b[k]).sum() for k in a)  # type: ignore[return-value]


def tree_axpy(alpha: Tensor | float, x: Params, y: Params) -> Params:
    """``alpha * x + y``."""
    return {k: alpha * x[k] + y[k] for k in x}


def tree_scale(alpha: Tensor | float, x: Params) -> Params:
    return {k: alpha * x[k] for k in x}


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, or 0 where ``den`` is 0 (a converged system stays put)."""
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, 1, den))


def conjugate_gradient(matvec: MatVec, b: Params, iterations: int) -> Params:
    """Approximately solve ``A x = b`` for symmetric positive definite ``A`` with a fixed
    number of CG iterations from ``x = 0``; only products ``A p`` are used.

    If a search direction has non-positive curvature (``p^T A p <= 0``: ``A`` is not
    positive definite there, as for a support Hessian far from a minimum) the iteration
    stops and keeps the last iterate, as truncated CG does, instead of stepping along a
    direction of negative curvature and diverging."""
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    r = dict(b)
    p = dict(b)
    rs = tree_dot(r, r)
    active = torch.ones_like(rs, dtype=torch.bool)
    for _ in range(iterations):
        ap = matvec(p)
        curvature = tree_dot(p, ap)
        active = active & (curvature > 0)
        alpha = torch.where(active, _safe_div(rs, curvature), torch.zeros_like(rs))
        x = tree_axpy(alpha, p, x)
        r = tree_axpy(-alpha, ap, r)
        rs_new = tree_dot(r, r)
        p = tree_axpy(_safe_div(rs_new, rs), p, r)
        rs = rs_new
    return x


def neumann_series(matvec: MatVec, v: Params, terms: int, alpha: float) -> Params:
    """``sum_{j=0..terms} (-alpha A)^j v``, which tends to ``(I + alpha A)^{-1} v`` when
    ``alpha * ||A|| < 1`` (the report's listing 4)."""
    total, term = dict(v), dict(v)
    for _ in range(terms):
        term = tree_scale(-alpha, matvec(term))
        total = tree_axpy(1.0, term, total)
    return total


def hessian_vector_product(
    loss: Callable[..., tuple[Tensor, Tensor]], params: Params, *args: Tensor
) -> MatVec:
    """``v -> H v`` for the Hessian of ``loss(params, *args)[0]`` at ``params``.

    The gradient is linearised once (one forward and backward pass) and each product is a
    single reverse pass through that gradient: CG and Neumann iterations do not recompute
    the forward pass. ``H`` is symmetric, so its vector-Jacobian product is ``H v``."""

    def gradient(p: Params) -> Params:
        return grad(lambda q: loss(q, *args)[0])(p)

    _, pullback = vjp(gradient, params)
    return lambda v: pullback(v)[0]
