"""Linear algebra over parameter dicts: pure functions ``(matvec, b) -> x``.

They know nothing about meta-learning: a solver states the system (which matrix-vector
product, which right-hand side) and picks how to solve it. No data-dependent Python control
flow: every loop runs its fixed number of iterations and a finished system is frozen by a
mask, so they run unchanged under ``torch.func.vmap`` (one system per task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import grad, vjp

from raybench.models import Params

MatVec = Callable[[Params], Params]


class SolveInfo(NamedTuple):
    """How an iterative solve ended (one value per system under vmap)."""

    iterations: Tensor  # iterations that moved the iterate
    negative_curvature: Tensor  # CG only: stopped at a direction with p^T A p <= 0


def tree_dot(a: Params, b: Params) -> Tensor:
    return sum((a[k] * b[k]).sum() for k in a)  # type: ignore[return-value]


def tree_norm(a: Params) -> Tensor:
    return tree_dot(a, a).clamp_min(0).sqrt()


def tree_axpy(alpha: Tensor | float, x: Params, y: Params) -> Params:
    """``alpha * x + y``."""
    return {k: alpha * x[k] + y[k] for k in x}


def tree_scale(alpha: Tensor | float, x: Params) -> Params:
    return {k: alpha * x[k] for k in x}


def tree_where(condition: Tensor, x: Params, y: Params) -> Params:
    return {k: torch.where(condition, x[k], y[k]) for k in x}


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, or 0 where ``den`` is 0 (a converged system stays put)."""
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, 1, den))


def conjugate_gradient(matvec: MatVec, b: Params, iterations: int) -> Params:
    """Approximately solve ``A x = b`` for symmetric positive definite ``A``; see
    :func:`truncated_cg`, whose iterate this is."""
    return truncated_cg(matvec, b, iterations)[0]


def truncated_cg(matvec: MatVec, b: Params, iterations: int) -> tuple[Params, SolveInfo]:
    """At most ``iterations`` CG iterations on ``A x = b`` from ``x = 0``, using only
    products ``A p``; the iterate and how the iteration ended.

    Stopping rule (truncated CG): iteration k computes the curvature ``p_k^T A p_k`` of
    its search direction; if it is not positive (``A`` is not positive definite there, as
    for a support Hessian far from a minimum) the iteration stops and returns ``x_{k-1}``
    instead of stepping along a direction of negative curvature and diverging. So the
    result is the CG iterate ``x_m``, ``m`` the number of iterations before the first
    non-positive curvature (``info.iterations``), which is the minimiser of
    ``x^T A x / 2 - b^T x`` over the Krylov space ``span(b, Ab, ..., A^{m-1} b)``: the
    largest such space on which ``A`` is positive definite. A system solved to working
    precision (residual below ``10 eps ||b||``) stays put without counting as either."""
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    r = dict(b)
    p = dict(b)
    rs = tree_dot(r, r)
    floor = (10 * torch.finfo(rs.dtype).eps) ** 2 * rs
    active = torch.ones_like(rs, dtype=torch.bool)
    negative = torch.zeros_like(rs, dtype=torch.bool)
    steps = torch.zeros_like(rs)
    for _ in range(iterations):
        ap = matvec(p)
        curvature = tree_dot(p, ap)
        unsolved = rs > floor
        stopped = active & unsolved & (curvature <= 0)
        negative = negative | stopped
        active = active & ~stopped
        moving = active & unsolved
        alpha = torch.where(moving, _safe_div(rs, curvature), torch.zeros_like(rs))
        steps = steps + moving.to(steps.dtype)
        x = tree_axpy(alpha, p, x)
        r = tree_axpy(-alpha, ap, r)
        rs_new = tree_dot(r, r)
        p = tree_axpy(_safe_div(rs_new, rs), p, r)
        rs = rs_new
    return x, SolveInfo(steps, negative)


def minres(
    matvec: MatVec, b: Params, iterations: int, tol: float = 0.0, *, early_exit: bool = False
) -> tuple[Params, SolveInfo]:
    """At most ``iterations`` MINRES iterations (Paige and Saunders, 1975) on ``A x = b``
    from ``x = 0``, for any symmetric ``A``, indefinite included: iterate k minimises
    ``||A x - b||`` over the Krylov space ``span(b, Ab, ..., A^{k-1} b)``, so the residual
    never grows and, for a nonsingular ``A``, reaches zero once the space is exhausted.
    Stops (freezes) when the residual estimate falls to ``tol * ||b||`` (at least to
    ``10 eps ||b||``, working precision) or the Krylov space is invariant; with
    ``early_exit`` the loop ends there too, which saves the remaining products but reads the
    tensors' values (not under vmap). The recurrences are those of SciPy's ``minres``
    without preconditioner."""
    zero = tree_dot(b, b) * 0
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    w = dict(x)
    w2 = dict(x)
    r1 = dict(b)
    r2 = dict(b)
    y = dict(b)
    beta1 = tree_norm(b)
    beta, oldb = beta1, zero
    dbar, epsln, phibar = zero, zero, beta1
    cs, sn = zero - 1, zero
    tiny = torch.finfo(beta1.dtype).tiny
    stop = max(tol, 10 * torch.finfo(beta1.dtype).eps)
    active = beta1 > 0
    steps = zero
    for k in range(iterations):
        v = tree_scale(_safe_div(torch.ones_like(beta), beta), y)
        y = matvec(v)
        if k > 0:
            y = tree_axpy(-_safe_div(beta, oldb), r1, y)
        alfa = tree_dot(v, y)
        y = tree_axpy(-_safe_div(alfa, beta), r2, y)
        r1, r2 = r2, y
        oldb, beta = beta, tree_norm(y)
        # the previous plane rotation, then a new one that annihilates beta
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = (gbar.square() + beta.square()).sqrt().clamp_min(tiny)
        cs, sn = gbar / gamma, beta / gamma
        phi = cs * phibar
        phibar = sn * phibar
        w1, w2 = w2, w
        w = tree_scale(1 / gamma, tree_axpy(-delta, w2, tree_axpy(-oldeps, w1, v)))
        x = tree_where(active, tree_axpy(phi, w, x), x)
        steps = steps + active.to(steps.dtype)
        # the space is exhausted (beta = 0: this step solved the system) or tol is reached
        active = active & (beta > 0) & (phibar > stop * beta1)
        if early_exit and not bool(active.any()):
            break
    return x, SolveInfo(steps, torch.zeros_like(active))


def neumann_series(matvec: MatVec, v: Params, terms: int, alpha: float) -> Params:
    """``sum_{j=0..terms} (-alpha A)^j v``, which tends to ``(I + alpha A)^{-1} v`` when
    ``alpha * ||A|| < 1`` (the report's listing 4)."""
    total, term = dict(v), dict(v)
    for _ in range(terms):
        term = tree_scale(-alpha, matvec(term))
        total = tree_axpy(1.0, term, total)
    return total


def lanczos(matvec: MatVec, start: Params, iterations: int) -> tuple[Tensor, Tensor]:
    """``iterations`` Lanczos steps from ``start``: the diagonal (k,) and off-diagonal
    (k - 1,) of the tridiagonal ``T = V^T A V``, ``V`` an orthonormal basis of the Krylov
    space (kept orthonormal by full reorthogonalisation). The eigenvalues of ``T`` (Ritz
    values) lie inside ``[lambda_min(A), lambda_max(A)]`` and the extreme ones approach
    ``A``'s extreme eigenvalues within a few tens of steps, from the inside. If the space is
    exhausted early, the remaining diagonal entries repeat the first one, uncoupled, which
    leaves the extreme Ritz values as they are."""
    names = list(start)
    shapes = [start[k].shape for k in names]
    sizes = [start[k].numel() for k in names]

    def flat(tree: Params) -> Tensor:
        return torch.cat([tree[k].reshape(-1) for k in names])

    def tree(vector: Tensor) -> Params:
        return {k: p.view(s) for k, p, s in zip(names, vector.split(sizes), shapes)}

    v = flat(start)
    v = v * _safe_div(torch.ones_like(v[0]), v.norm())
    basis = v.unsqueeze(0)  # (j, n): the Krylov basis so far
    diagonal: list[Tensor] = []
    off: list[Tensor] = []
    alive = torch.ones_like(v[0], dtype=torch.bool)
    size = torch.zeros_like(v[0])
    eps = torch.finfo(v.dtype).eps
    for j in range(iterations):
        w = flat(matvec(tree(v)))
        a = v @ w
        a = torch.where(alive, a, diagonal[0]) if diagonal else a
        diagonal.append(a)
        size = torch.maximum(size, a.abs())
        if j == iterations - 1:
            break
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            w = w - basis.T @ (basis @ w)
        beta = w.norm()
        alive = alive & (beta > 100 * eps * size)
        beta = torch.where(alive, beta, torch.zeros_like(beta))
        off.append(beta)
        size = torch.maximum(size, beta)
        v = w * _safe_div(torch.ones_like(beta), beta)
        basis = torch.cat([basis, v.unsqueeze(0)])
    stack = torch.stack(diagonal, -1)
    return stack, torch.stack(off, -1) if off else stack[..., :0]


def tridiagonal_extremes(diagonal: Tensor, off: Tensor) -> tuple[Tensor, Tensor]:
    """Smallest and largest eigenvalue of symmetric tridiagonal matrices (batched over
    leading axes), e.g. the Ritz values of :func:`lanczos`."""
    t = torch.diag_embed(diagonal)
    if off.shape[-1]:
        t = t + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    values = torch.linalg.eigvalsh(t)
    return values[..., 0], values[..., -1]


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
