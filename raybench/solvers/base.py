"""The solver protocol, the registry, and the inner loop every solver shares.

A solver turns meta-parameters and a batch of tasks into the meta-gradient (or
pseudo-gradient) the outer optimiser applies, plus per-task metrics before and after
adaptation. Each solver is written per task and mapped over the batch's tasks with
:meth:`Solver.map` (``torch.func.vmap`` on a GPU, a loop on a CPU: see
``raybench.batching``); parameters are plain dicts passed through ``functional_call``,
never mutated in place.
The outer optimiser, evaluation and storage live in ``raybench.train``, not here.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.func import grad, grad_and_value, vmap

from raybench import autodiff, linalg
from raybench.batching import resolve, task_map
from raybench.config import (
    EVAL_ADAPTATIONS,
    Bound,
    RunConfig,
    bounds_of,
    build_config,
    did_you_mean,
)
from raybench.errors import RaybenchError
from raybench.metrics import METRICS, TRAIN_METRICS  # noqa: F401 - the package's names
from raybench.models import FunctionalModel, Params
from raybench.solver_catalog import FAMILIES
from raybench.tasks import TaskBatch, TaskSampler

Metrics = dict[str, Tensor]  # each (B,): one value per task
Loss = tuple[Tensor, Tensor]  # (mean loss, logits) of one task


@dataclass(frozen=True)
class NoOptions:
    """For solvers without knobs of their own."""


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.argmax(-1) == y).to(logits.dtype).mean()


def sgd_step(params: Params, grads: Params, lr: float) -> Params:
    return {k: params[k] - lr * grads[k] for k in params}


def batch_mean(grads: Params) -> Params:
    """Per-task gradients (leading task axis) -> the meta-batch average."""
    return {k: g.mean(0) for k, g in grads.items()}


class Solver(ABC):
    """One way of computing the meta-gradient. Subclasses set ``name`` and ``family``,
    may declare an ``Options`` dataclass of ``raybench.config.setting`` fields, and
    implement :meth:`meta_grad`."""

    name: ClassVar[str]
    family: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    def __init__(
        self,
        model: FunctionalModel,
        *,
        inner_lr: float,
        inner_steps: int,
        options: Any = None,
        batching: str = "vmap",
        curve_tasks: int | None = None,
        compile: bool = False,
    ) -> None:
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.options = options if options is not None else self.Options()
        self.batching = batching  # "vmap" or "loop" (resolved for the device)
        self.curve_tasks = curve_tasks  # training curves' extra passes: this many tasks
        # torch.compile around the per-task functions of the meta-gradient, in the loop
        # only, for the solvers that declare it works (``compilable``); the graphs it
        # traces need torch.func's transforms, not autograd's.
        self.compile = compile and self.compilable and batching == "loop"

    compilable: ClassVar[bool] = False  # tested equal to the eager meta-gradient
    # Options whose default (None) means "the value of this run setting": what a tuning
    # protocol enqueues as the default trial, where a search space cannot say None.
    defaults_from: ClassVar[dict[str, str]] = {}

    @property
    def autograd_in_loop(self) -> bool:
        """Whether derivatives use plain autograd: in the eager task loop only."""
        return self.batching == "loop" and not self.compile

    def map(self, fn: Any, in_dims: int | tuple | None = 0, *, compiled: bool = False) -> Any:
        """``fn`` (one task) over every task of a batch, as ``vmap(fn, in_dims)`` would;
        ``compiled`` marks the hot per-task functions, compiled when ``compile`` is on (one
        graph per shape and grad mode: ``dynamic=False`` keeps each exact)."""
        if compiled and self.compile:
            fn = torch.compile(fn, dynamic=False)
        return task_map(fn, self.batching, in_dims)

    def grad_and_value(self, f: Any, has_aux: bool = False) -> Any:
        """``torch.func.grad_and_value`` under vmap or compile; plain autograd in the eager
        task loop, where the transforms only add overhead (:mod:`raybench.autodiff`)."""
        if self.autograd_in_loop:
            return autodiff.grad_and_value(f, has_aux=has_aux)
        return grad_and_value(f, has_aux=has_aux)

    def grad(self, f: Any, has_aux: bool = False) -> Any:
        """``torch.func.grad``, or its autograd form in the eager task loop."""
        if self.autograd_in_loop:
            return autodiff.grad(f, has_aux=has_aux)
        return grad(f, has_aux=has_aux)

    def hessian_vector_product(self, loss: Any, params: Params, *args: Tensor) -> Any:
        """``v -> H v`` for one task's loss at ``params`` (linalg's, or autodiff's)."""
        if self.autograd_in_loop:
            return autodiff.hessian_vector_product(loss, params, *args)
        return linalg.hessian_vector_product(loss, params, *args)

    def batch_grad(self, objective: Any, params: Params, batch: TaskBatch) -> tuple[Params, Any]:
        """The gradient of the batch mean of ``objective(params, *task) -> (loss, aux)``,
        with every task's ``aux``: one graph over the vmapped batch, or per-task gradients
        averaged in the loop (the same number, to float rounding)."""
        if self.batching == "vmap":

            def batch_objective(p: Params) -> tuple[Tensor, Any]:
                losses, aux = vmap(objective, in_dims=(None, 0, 0, 0, 0))(p, *batch)
                return losses.mean(), aux

            return grad(batch_objective, has_aux=True)(params)
        task_grad = self.grad(objective, has_aux=True)
        per_task, aux = self.map(task_grad, in_dims=(None, 0, 0, 0, 0), compiled=True)(
            params, *batch
        )
        return batch_mean(per_task), aux

    # -- what the trainer asks before and at each meta-step ------------------------------

    def init_params(
        self, seed: int, device: torch.device, dtype: torch.dtype, train: TaskSampler
    ) -> Params:
        """The starting meta-parameters; baselines reshape them for their pre-training."""
        return self.model.init_params(seed, device, dtype)

    def train_batch(self, train: TaskSampler, n_tasks: int, generator: torch.Generator) -> Any:
        """What one meta-step consumes: by default ``n_tasks`` tasks of the training part."""
        return train.sample(n_tasks, generator)

    # -- one task: plain functions of tensors, vmapped by the batch methods --------------

    def support_grad(self, fast: Params, x: Tensor, y: Tensor) -> tuple[Params, Loss]:
        """Gradient of one task's support loss, with (loss, logits) for free."""
        return self.grad_and_value(self.model.loss, has_aux=True)(fast, x, y)

    def adapt_task(self, params: Params, x: Tensor, y: Tensor, steps: int) -> tuple[Params, Loss]:
        """``steps`` SGD steps on the support set. Differentiable when called under a
        ``torch.func.grad`` transform (second order); the (loss, logits) returned are those
        at the starting point, the "before adaptation" support metrics."""
        fast = params
        before: Loss | None = None
        for _ in range(steps):
            grads, (loss, logits) = self.support_grad(fast, x, y)
            if before is None:
                before = (loss, logits)
            fast = sgd_step(fast, grads, self.inner_lr)
        if before is None:
            before = self.model.loss(params, x, y)
        return fast, before

    # -- batches -----------------------------------------------------------------------

    def adapt(
        self,
        params: Params,
        support_x: Tensor,
        support_y: Tensor,
        steps: int | None = None,
        *,
        plain: bool = False,
    ) -> tuple[Params, Loss]:
        """Adapt to every task of a batch: fast weights with a leading task axis. With
        ``plain``, plain SGD on the support loss whatever the solver's own inner loop."""
        steps = self.inner_steps if steps is None else steps
        adapt_task = Solver.adapt_task.__get__(self) if plain else self.adapt_task

        def one(x: Tensor, y: Tensor) -> tuple[Params, Loss]:
            return adapt_task(params, x, y, steps)

        return self.map(one, compiled=True)(support_x, support_y)

    def metrics(
        self,
        params: Params,
        fast: Params,
        batch: TaskBatch,
        support_before: Loss,
        query_after: Loss | None = None,
        *,
        every_task: bool = False,
    ) -> Metrics:
        """The report's four curves (and accuracies) per task; reuses what the solver
        already computed and runs the remaining forward passes. In training (not
        ``every_task``) with ``curve_tasks`` set, the passes that only the curves need (the
        support after adaptation, the query before it) run on the batch's first
        ``curve_tasks`` tasks, and those metrics have one value per measured task."""
        sx, sy, qx, qy = batch
        n = len(sy) if every_task or self.curve_tasks is None else min(self.curve_tasks, len(sy))
        with torch.no_grad():
            fast = {k: v.detach() for k, v in fast.items()}
            if query_after is None:
                query_after = self.map(self.model.loss)(fast, qx, qy)
            fast = {k: v[:n] for k, v in fast.items()}
            support_after = self.map(self.model.loss)(fast, sx[:n], sy[:n])
            query_before = self.map(self.model.loss, in_dims=(None, 0, 0))(params, qx[:n], qy[:n])
            out: Metrics = {}
            for prefix, (loss, logits), y in (
                ("support", support_before, sy),
                ("support", support_after, sy[:n]),
                ("query", query_before, qy[:n]),
                ("query", query_after, qy),
            ):
                when = "pre" if f"{prefix}_loss_pre" not in out else "post"
                out[f"{prefix}_loss_{when}"] = loss.detach()
                out[f"{prefix}_acc_{when}"] = (
                    (logits.detach().argmax(-1) == y).to(logits.dtype).mean(-1)
                )
        return out

    def evaluate(
        self, params: Params, batch: TaskBatch, steps: int, adaptation: str = "plain"
    ) -> Metrics:
        """Metrics after ``steps`` of adaptation, by default plain SGD on the support loss:
        the same for every meta-solver, so evaluation compares initialisations, not
        evaluation procedures. ``adaptation="solver"`` uses the solver's own inner loop
        (e.g. iMAML's proximal one): an explicit, recorded choice (``eval_adaptation``)."""
        if adaptation not in EVAL_ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {EVAL_ADAPTATIONS}, not {adaptation!r}")
        with torch.no_grad():
            fast, before = self.adapt(
                params, batch.support_x, batch.support_y, steps, plain=adaptation == "plain"
            )
        return self.metrics(params, fast, batch, before, every_task=True)

    @abstractmethod
    def meta_grad(self, params: Params, batch: TaskBatch) -> tuple[Params, Metrics]:
        """The (pseudo-)gradient for the outer optimiser, averaged over the batch's tasks,
        and per-task metrics (see ``METRICS``; a solver without adaptation in training
        may return only some of them)."""


SOLVERS: dict[str, type[Solver]] = {}


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: make a solver available by its name."""
    if cls.family not in FAMILIES:
        raise ValueError(f"{cls.__name__}.family must be one of {FAMILIES}")
    if cls.name in SOLVERS:
        raise ValueError(f"solver {cls.name!r} registered twice")
    SOLVERS[cls.name] = cls
    return cls


def solver_class(name: str) -> type[Solver]:
    if name not in SOLVERS:
        raise RaybenchError(
            f"unknown solver {name!r}{did_you_mean(name, SOLVERS)}; solvers: {', '.join(SOLVERS)}"
        )
    return SOLVERS[name]


def option_bounds() -> dict[str, dict[str, Bound]]:
    return {name: bounds_of(cls.Options) for name, cls in SOLVERS.items()}


def make_config(
    solver: str, preset: str = "paper", overrides: dict[str, Any] | None = None
) -> RunConfig:
    """A validated run config for a registered solver, with its own option defaults."""
    cls = solver_class(solver)
    return build_config(
        solver,
        preset,
        overrides,
        solver_option_bounds=option_bounds(),
        solver_option_defaults=dataclasses.asdict(cls.Options()),
    )


def make_solver(config: RunConfig, model: FunctionalModel) -> Solver:
    """The config's solver, mapping tasks the way ``config.batching`` says for the device
    the config runs on."""
    cls = solver_class(config.solver)
    return cls(
        model,
        inner_lr=config.inner_lr,
        inner_steps=config.inner_steps,
        options=cls.Options(**config.solver_options),
        batching=task_mapping(config),
        curve_tasks=config.curve_tasks,
        compile=config.compile,
    )


def task_mapping(config: RunConfig) -> str:
    """``vmap`` or ``loop``: how a run of ``config`` maps tasks on the device it uses."""
    from raybench.runtime import resolve_device

    return resolve(config.batching, resolve_device(config.device))
