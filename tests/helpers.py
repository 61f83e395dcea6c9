"""Tiny float64 models and tasks shared by the solver tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raybench.models import FunctionalModel, Params, model_for
from raybench.solvers import make_config, make_solver
from raybench.tasks import TaskBatch

WAYS, HIDDEN = 3, 3
INNER_LR, INNER_STEPS = 0.4, 2
# How solvers map tasks in the tests ("vmap" or "loop"); the solver test modules run
# every test under both (the `both_batchings` fixture of conftest.py).
BATCHING = "vmap"


def tiny_batch(n_tasks: int = 2, shots: int = 1, query: int = 2, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(WAYS).repeat_interleave(shots).repeat(n_tasks, 1)
    qy = torch.arange(WAYS).repeat_interleave(query).repeat(n_tasks, 1)
    return TaskBatch(
        torch.rand(n_tasks, WAYS * shots, 1, 28, 28, generator=g, dtype=torch.float64),
        sy,
        torch.rand(n_tasks, WAYS * query, 1, 28, 28, generator=g, dtype=torch.float64),
        qy,
    )


def solver_for(
    name: str,
    inner_steps: int = INNER_STEPS,
    inner_lr: float = INNER_LR,
    batching: str | None = None,
    activation: str = "relu",
    pooling: str = "max",
    compile: bool = False,
    **options,
):
    overrides = {
        "ways": WAYS,
        "inner_lr": inner_lr,
        "inner_steps": inner_steps,
        "hidden": HIDDEN,
        "batching": batching or BATCHING,
        "activation": activation,
        "pooling": pooling,
        "curve_tasks": None,  # every task's curves: the tests compare them task by task
        "compile": compile,
    }
    overrides.update({f"{name}.{k}": v for k, v in options.items()})
    config = make_config(name, "paper", overrides)
    model = model_for(config)
    return model, make_solver(config, model)


def smooth_model(seed: int = 0) -> tuple[FunctionalModel, Params]:
    """A tanh MLP: smooth everywhere, so finite differences of nested optima are exact to
    many digits (ReLU kinks and max-pool switches are not)."""
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 6), nn.Tanh(), nn.Linear(6, WAYS))
    model = FunctionalModel(module)
    return model, model.init_params(seed, torch.device("cpu"), torch.float64)


def params64(model: FunctionalModel, seed: int = 0) -> Params:
    return model.init_params(seed, torch.device("cpu"), torch.float64)


def flat(grads: Params) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads.values()])


def unflat(vector: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i : i + v.numel()].view_as(v)
        i += v.numel()
    return out


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def sgd(model, params: Params, x, y, steps: int, lr: float = INNER_LR) -> Params:
    """Plain SGD on one task's support set, written independently of the solvers."""
    names = list(params)
    fast = [params[n].detach().clone().requires_grad_(True) for n in names]
    for _ in range(steps):
        loss = F.cross_entropy(model(dict(zip(names, fast)), x), y)
        grads = torch.autograd.grad(loss, fast)
        fast = [(w - lr * g).detach().requires_grad_(True) for w, g in zip(fast, grads)]
    return {n: w.detach().requires_grad_(True) for n, w in zip(names, fast)}


def support_hessian(model, fast: Params, x, y) -> torch.Tensor:
    """The dense Hessian of one task's support loss at ``fast``."""

    def loss(vector: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(unflat(vector, fast), x), y)

    return torch.autograd.functional.hessian(loss, flat(fast))


def finite_difference(fn, params: Params, eps: float = 1e-6) -> torch.Tensor:
    """Central differences along every coordinate of the parameter dict."""
    out = []
    for name, value in params.items():
        for i in range(value.numel()):
            plus = {k: v.clone() for k, v in params.items()}
            minus = {k: v.clone() for k, v in params.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            out.append((fn(plus) - fn(minus)) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)


def query_gradient(model, fast: Params, x, y) -> torch.Tensor:
    """grad L_query at ``fast``, flat."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in fast.items()}
    grads = torch.autograd.grad(F.cross_entropy(model(leaves, x), y), list(leaves.values()))
    return torch.cat([g.reshape(-1) for g in grads])


def proximal_descent(
    model, theta: Params, x, y, lam: float, lr: float, steps: int, tol: float = 0.0
) -> tuple[Params, int]:
    """Gradient descent on L(phi) + lam/2 ||phi - theta||^2 from theta, stopping before the
    first step whose gradient norm is at most ``tol`` times the first one; written
    independently of the solvers. Returns phi and the steps taken."""
    names = list(theta)
    phi = [theta[n].detach().clone() for n in names]
    first = None
    for taken in range(steps):
        leaves = [p.clone().requires_grad_(True) for p in phi]
        loss = F.cross_entropy(model(dict(zip(names, leaves)), x), y)
        grads = torch.autograd.grad(loss, leaves)
        grads = [g + lam * (p - theta[n]) for g, p, n in zip(grads, phi, names)]
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        first = norm if first is None else first
        if tol > 0 and norm <= tol * first:
            return dict(zip(names, phi)), taken
        phi = [p - lr * g for p, g in zip(phi, grads)]
    return dict(zip(names, phi)), steps


def dense_truncated_cg(a: torch.Tensor, b: torch.Tensor, iterations: int):
    """Textbook CG with a Python break at the first non-positive curvature p^T A p: the
    iterate, the steps taken, and whether it stopped there."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    for k in range(iterations):
        curvature = p @ a @ p
        if curvature <= 0:
            return x, k, True
        alpha = (r @ r) / curvature
        x = x + alpha * p
        r_new = r - alpha * (a @ p)
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
    return x, iterations, False
