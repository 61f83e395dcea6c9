"""Implicit solvers' assumptions, measured: does the system they solve mean what it should?

An implicit solver (:class:`raybench.solvers._implicit.ImplicitSolver`) returns the
meta-gradient of a proximal inner problem ``F(phi) = L_support(phi) + lam/2 ||phi - theta||^2``
by solving ``A g = grad L_query(phi)`` with ``A = (1 + damping) I + H/lam``. That answer rests
on premises that a benchmark setting can break without any error:

- ``stationary``: ``phi`` solves the inner problem. Measured as the stationarity residual
  ``||grad F(phi)|| / ||grad F(theta)||`` (1 = no progress from theta, 0 = solved).
- ``convex``: ``F`` is strongly convex at ``phi``, i.e. ``I + H/lam`` is positive definite, i.e.
  ``lam > -lambda_min(H)``; otherwise the implicit gradient of a minimiser is not what the
  system defines (and truncated CG stops at the first negative curvature).
- ``contraction`` (Neumann): the series ``sum_j (-H/lam)^j`` converges, i.e. the spectral
  radius ``rho(H/lam) = rho(alpha H) < 1``.
- ``solved``: the linear solve is accurate, ``||A g - b|| / ||b||`` small.

The extreme eigenvalues of the support Hessian ``H`` are Ritz values of a few Lanczos steps
on Hessian-vector products: they lie inside the true spectrum, so an indefinite verdict is
certain while a definite one is an estimate. Training measures all this at each evaluation
point, on the first ``diag_tasks`` fixed validation tasks (``Probe``; never per step), into
the ``curves`` table; ``raybench fidelity`` adds the exact solution of each solver's own
system (:func:`exact_solution`), separating the solver's approximation error from the
mismatch between the implicit and the unrolled objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from raybench.batching import task_map
from raybench.config import RunConfig
from raybench.linalg import lanczos, minres, tree_axpy, tree_norm, tridiagonal_extremes
from raybench.models import Params
from raybench.solvers._implicit import ImplicitSolver
from raybench.solvers.base import Solver
from raybench.tasks import TaskBatch, TaskIndex, TaskSampler

LANCZOS_SEED = 5  # start vectors of the Lanczos iterations: fixed, the same for every run


@dataclass(frozen=True)
class TaskMeasures:
    """One value per measured task (float64, CPU)."""

    stationarity: Tensor
    hessian_min: Tensor
    hessian_max: Tensor
    iterations: Tensor
    negative_curvature: Tensor
    residual: Tensor


def _div(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / torch.where(den > 0, den, 1), torch.zeros_like(num))


def lanczos_starts(params: Params, n_tasks: int, seed: int = LANCZOS_SEED) -> Params:
    """Fixed random start vectors, one per task, shaped like ``params``."""
    generator = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn((n_tasks, *p.shape), generator=generator, dtype=torch.float64).to(
            device=p.device, dtype=p.dtype
        )
        for k, p in params.items()
    }


def measure(
    solver: ImplicitSolver,
    params: Params,
    batch: TaskBatch,
    starts: Params,
    lanczos_steps: int,
) -> TaskMeasures:
    """Every per-task measurement at ``params``, with the solver's own inner solution and
    linear solve, all tasks at once."""

    def one(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor, start: Params) -> tuple[Tensor, ...]:
        fast, _ = solver.inner_solution(params, sx, sy)
        fast = {k: v.detach() for k, v in fast.items()}
        at_theta = tree_norm(solver.inner_gradient(params, params, sx, sy))
        at_phi = tree_norm(solver.inner_gradient(params, fast, sx, sy))
        hvp = solver.support_hvp(fast, sx, sy)
        diagonal, off = lanczos(hvp, start, lanczos_steps)
        rhs = _query_grad(solver, fast, qx, qy)
        g, info = solver.solve(hvp if solver.uses_hessian else None, rhs)
        residual = _div(tree_norm(tree_axpy(-1.0, rhs, solver.system(hvp)(g))), tree_norm(rhs))
        return (
            _div(at_phi, at_theta),
            diagonal,
            off,
            info.iterations,
            info.negative_curvature,
            residual,
        )

    with torch.no_grad():  # tasks mapped the solver's way: its autograd differs by batching
        out = solver.map(one, in_dims=(0, 0, 0, 0, 0))(*batch, starts)
    stationarity, diagonal, off, iterations, negative, residual = (t.cpu() for t in out)
    low, high = tridiagonal_extremes(diagonal.double(), off.double())
    return TaskMeasures(
        stationarity=stationarity.double(),
        hessian_min=low,
        hessian_max=high,
        iterations=iterations.double(),
        negative_curvature=negative.bool(),
        residual=residual.double(),
    )


def curve_values(solver: ImplicitSolver, m: TaskMeasures) -> dict[str, Any]:
    """The ``curves`` columns of one evaluation point (see ``raybench.metrics.CURVE_FIELDS``)."""
    lam = solver.lam
    convexity = 1 + m.hessian_min / lam
    radius = torch.maximum(m.hessian_min.abs(), m.hessian_max.abs()) / lam
    negative = int(m.negative_curvature.sum()) if solver.stops_at_negative_curvature else None
    return {
        "diag_tasks": int(m.stationarity.numel()),
        "diag_lam": float(lam),
        "diag_stationarity": float(m.stationarity.max()),
        "diag_hessian_min": float(m.hessian_min.min()),
        "diag_hessian_max": float(m.hessian_max.max()),
        "diag_convexity": float(convexity.min()),
        "diag_indefinite_tasks": int((~(convexity > 0)).sum()),
        "diag_spectral_radius": float(radius.max()),
        "diag_solve_iterations": float(m.iterations.mean()),
        "diag_negative_curvature": negative,
        "diag_solve_residual": float(m.residual.max()),
    }


class Probe:
    """What a training run measures at each evaluation point: the same fixed validation
    tasks and Lanczos starts every time, no random state of the run touched."""

    def __init__(self, solver: ImplicitSolver, batch: TaskBatch, lanczos_steps: int) -> None:
        self.solver, self.batch, self.lanczos_steps = solver, batch, lanczos_steps
        self.starts: Params | None = None

    @classmethod
    def for_run(
        cls, solver: Solver, config: RunConfig, sampler: TaskSampler, index: TaskIndex
    ) -> Probe | None:
        """The probe of a run, or None (not an implicit solver, or ``diag_tasks = 0``)."""
        if not isinstance(solver, ImplicitSolver) or config.diag_tasks == 0:
            return None
        batch = sampler.gather(index.slice(0, min(config.diag_tasks, len(index))))
        return cls(solver, batch, config.diag_lanczos_steps)

    def __call__(self, params: Params) -> dict[str, Any]:
        if self.starts is None:
            self.starts = lanczos_starts(params, len(self.batch))
        measured = measure(self.solver, params, self.batch, self.starts, self.lanczos_steps)
        return curve_values(self.solver, measured)


# -- verdicts --------------------------------------------------------------------------


# -- the exact solution of a solver's own system ----------------------------------------

DENSE_MAX_PARAMS = 500  # at most this many parameters: a dense solve, else MINRES
EXACT_ITERATIONS = 500
EXACT_TOL = 1e-10


@dataclass(frozen=True)
class ExactSolution:
    """``A^{-1} grad L_query(phi)`` of each task, averaged over the batch, with ``A`` and
    ``phi`` exactly the solver's own; and how exact it is."""

    grad: Params
    method: str  # dense | minres
    residual: float  # max over tasks of ||A g - b|| / ||b||
    hessian_min: float | None  # exact extreme eigenvalues of H (dense only)
    hessian_max: float | None


def _flat(tree: Params) -> Tensor:
    return torch.cat([v.reshape(-1) for v in tree.values()])


def _unflat(vector: Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i : i + v.numel()].view_as(v)
        i += v.numel()
    return out


def exact_solution(
    solver: ImplicitSolver,
    params: Params,
    batch: TaskBatch,
    *,
    dense_max: int = DENSE_MAX_PARAMS,
    iterations: int = EXACT_ITERATIONS,
) -> ExactSolution:
    """The solver's own system solved exactly: densely (float64) where the network has at
    most ``dense_max`` parameters, else by ``iterations`` of MINRES, task by task.

    The adapted weights and right-hand sides are computed for all tasks at once, exactly
    as the meta-gradient computes them: on a support loss whose gradient jumps (ReLU,
    max-pooling) a different kernel's rounding can move ``phi`` across a kink, which
    would be counted as the solver's error."""
    n = sum(p.numel() for p in params.values())

    def inner(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Params, Params]:
        fast = {k: v.detach() for k, v in solver.inner_solution(params, sx, sy)[0].items()}
        return fast, _query_grad(solver, fast, qx, qy)

    with torch.no_grad():
        fasts, rhss = solver.map(inner)(*batch)
        tasks = [
            (
                batch.task(b)[:2],
                {k: v[b] for k, v in fasts.items()},
                {k: v[b] for k, v in rhss.items()},
            )
            for b in range(len(batch))
        ]
        if n <= dense_max:
            return _dense(solver, params, tasks)
        return _minres(solver, params, tasks, iterations)


def _query_grad(solver: Solver, fast: Params, qx: Tensor, qy: Tensor) -> Params:
    return solver.grad(lambda p: solver.model.loss(p, qx, qy)[0])(fast)


def _relative_residual(system: Any, g: Params, rhs: Params) -> Tensor:
    return _div(tree_norm(tree_axpy(-1.0, rhs, system(g))), tree_norm(rhs))


def _dense_system(system: Any, like: Params, batching: str) -> Tensor:
    """The matrix of a linear map over parameter dicts, column by column (float64); the
    columns mapped as the solver maps tasks (an autograd product does not vmap)."""
    first = next(iter(like.values()))
    eye = torch.eye(sum(v.numel() for v in like.values()), dtype=first.dtype, device=first.device)

    def column(e: Tensor) -> Tensor:
        return _flat(system(_unflat(e, like)))

    columns = task_map(column, batching, chunk_size=256)(eye).double()
    return (columns + columns.T) / 2  # symmetric up to rounding


Task = tuple[tuple[Tensor, Tensor], Params, Params]  # (support x, y), phi, rhs


def _dense(solver: ImplicitSolver, params: Params, tasks: list[Task]) -> ExactSolution:
    grads, residuals, lows, highs = [], [], [], []
    for (sx, sy), fast, rhs in tasks:
        system = solver.system(solver.support_hvp(fast, sx, sy))
        matrix = _dense_system(system, fast, solver.batching)
        g = torch.linalg.solve(matrix, _flat(rhs).double())
        g_tree = _unflat(g.to(_flat(rhs).dtype), fast)
        residuals.append(_relative_residual(system, g_tree, rhs))
        grads.append(g_tree)
        # A = (1 + damping) I + H/lam, so H's eigenvalues follow from A's
        eigen = torch.linalg.eigvalsh(matrix)
        lows.append((eigen[0] - 1 - solver.damping) * solver.lam)
        highs.append((eigen[-1] - 1 - solver.damping) * solver.lam)
    mean = {k: torch.stack([g[k] for g in grads]).mean(0) for k in params}
    return ExactSolution(
        mean,
        "dense",
        float(torch.stack(residuals).max()),
        float(torch.stack(lows).min()),
        float(torch.stack(highs).max()),
    )


def _minres(
    solver: ImplicitSolver, params: Params, tasks: list[Task], iterations: int
) -> ExactSolution:
    """Task by task, so each stops once solved (the check reads values: no vmap here)."""
    grads, residuals = [], []
    for (sx, sy), fast, rhs in tasks:
        system = solver.system(solver.support_hvp(fast, sx, sy))
        g, _ = minres(system, rhs, iterations, tol=EXACT_TOL, early_exit=True)
        grads.append(g)
        residuals.append(_relative_residual(system, g, rhs))
    mean = {k: torch.stack([g[k] for g in grads]).mean(0) for k in params}
    return ExactSolution(mean, "minres", float(torch.stack(residuals).max()), None, None)
