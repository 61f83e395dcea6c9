"""The math of the solvers, in float64 on a tiny model and tiny random tasks."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    INNER_LR,
    INNER_STEPS,
    finite_difference,
    flat,
    params64,
    rel_err,
    sgd,
    solver_for,
    tiny_batch,
)

from raybench.reference import loop_meta_grad
from raybench.solvers import METRICS, SOLVERS
from raybench.tasks import TaskBatch

pytestmark = pytest.mark.usefixtures("both_batchings")


def post_adaptation_query_loss(model, params, batch, steps) -> float:
    losses = []
    for b in range(len(batch)):
        sx, sy, qx, qy = batch.task(b)
        fast = sgd(model, params, sx, sy, steps)
        with torch.no_grad():
            losses.append(F.cross_entropy(model(fast, qx), qy))
    return torch.stack(losses).mean().item()


@functools.cache
def maml_finite_differences() -> torch.Tensor:
    """Computed once for both batchings: it does not depend on how the solver maps tasks."""
    model, _ = solver_for("maml")
    params, batch = params64(model), tiny_batch()
    return finite_difference(
        lambda p: post_adaptation_query_loss(model, p, batch, INNER_STEPS), params
    )


def test_maml_meta_gradient_matches_finite_differences() -> None:
    """Second-order gradients on the path actually used: vmap with the hand-written batch
    norm, and the task loop with torch's native one."""
    model, solver = solver_for("maml")
    params, batch = params64(model), tiny_batch()
    grads, _ = solver.meta_grad(params, batch)
    assert rel_err(flat(grads), maml_finite_differences()) < 1e-6


@pytest.mark.parametrize(("activation", "pooling"), [("gelu", "avg"), ("silu", "avg")])
def test_maml_meta_gradient_matches_finite_differences_on_every_network(
    activation: str, pooling: str
) -> None:
    """The smooth network choices, second order, on both paths: the meta-gradient's
    derivative along random directions against central differences of the loss (the
    full gradient's differences are checked for the report's network above; on this tiny
    model a smooth unit with max-pooling puts a switch of the max within their step)."""
    model, solver = solver_for("maml", activation=activation, pooling=pooling)
    assert {type(m).__name__ for m in model.module.modules()} >= {
        {"gelu": "GELU", "silu": "SiLU"}[activation],
        {"avg": "AvgPool2d"}[pooling],
    }
    params, batch = params64(model), tiny_batch()
    grads, _ = solver.meta_grad(params, batch)
    generator, eps = torch.Generator().manual_seed(3), 1e-6
    for _ in range(6):
        step = {
            k: torch.randn(v.shape, generator=generator, dtype=v.dtype) for k, v in params.items()
        }
        plus = {k: v + eps * step[k] for k, v in params.items()}
        minus = {k: v - eps * step[k] for k, v in params.items()}
        losses = [post_adaptation_query_loss(model, p, batch, INNER_STEPS) for p in (plus, minus)]
        expected = (losses[0] - losses[1]) / (2 * eps)
        assert (flat(grads) @ flat(step)).item() == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_maml_is_second_order() -> None:
    """The Hessian terms are there: MAML and FOMAML differ once there are inner steps."""
    model, maml = solver_for("maml")
    _, fomaml = solver_for("fomaml")
    params, batch = params64(model), tiny_batch()
    assert (
        rel_err(flat(fomaml.meta_grad(params, batch)[0]), flat(maml.meta_grad(params, batch)[0]))
        > 1e-3
    )


def test_fomaml_is_query_gradient_at_adapted_weights() -> None:
    model, solver = solver_for("fomaml")
    params, batch = params64(model), tiny_batch()
    grads, _ = solver.meta_grad(params, batch)
    expected = None
    for b in range(len(batch)):
        sx, sy, qx, qy = batch.task(b)
        fast = sgd(model, params, sx, sy, INNER_STEPS)
        g = torch.autograd.grad(F.cross_entropy(model(fast, qx), qy), list(fast.values()))
        expected = g if expected is None else [e + x for e, x in zip(expected, g)]
    expected_flat = torch.cat([e.reshape(-1) for e in expected]) / len(batch)
    assert rel_err(flat(grads), expected_flat) < 1e-10


def test_zero_inner_steps_is_the_plain_gradient() -> None:
    model, maml = solver_for("maml", inner_steps=0)
    _, fomaml = solver_for("fomaml", inner_steps=0)
    params, batch = params64(model), tiny_batch()
    plain = torch.func.grad(
        lambda p: torch.stack(
            [F.cross_entropy(model(p, batch.query_x[b]), batch.query_y[b]) for b in range(2)]
        ).mean()
    )(params)
    for solver in (maml, fomaml):
        assert rel_err(flat(solver.meta_grad(params, batch)[0]), flat(plain)) < 1e-12


@pytest.mark.parametrize("name", ["maml", "fomaml"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vectorised_equals_reference_loop(name: str, dtype: torch.dtype) -> None:
    """vmap over tasks equals the report-style Python loop with torch.autograd.grad."""
    model, solver = solver_for(name)
    params = {k: v.to(dtype) for k, v in params64(model).items()}
    batch = TaskBatch(*(t.to(dtype) if t.is_floating_point() else t for t in tiny_batch(3)))
    grads, _ = solver.meta_grad(params, batch)
    reference = loop_meta_grad(
        model,
        params,
        batch,
        inner_lr=INNER_LR,
        inner_steps=INNER_STEPS,
        first_order=name == "fomaml",
    )
    # The two paths sum in other orders (vmap's batched products, the hand-written batch
    # norm), so they agree to rounding: u = 2**-53 or 2**-24 per operation, through two inner
    # steps and a second-order backward of a four-layer network. The tolerances leave 2**10
    # (float32) and 2**19 (float64) for that to amplify, on any kernels: the paths share
    # them here. An accuracy is a count of predictions, so it agrees exactly unless a logit
    # ties to rounding (one prediction is 1/query, far beyond either tolerance).
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert rel_err(flat(grads), flat(reference)) < tol


META_SOLVERS = sorted(n for n, cls in SOLVERS.items() if cls.family != "baseline")


@pytest.mark.parametrize("name", META_SOLVERS)
def test_conformance_batch_equals_loop_over_tasks(name: str) -> None:
    """Every registered solver: the batch result is the mean of single-task results, finite,
    deterministic, with a metric per task for each of the report's curves."""
    model, solver = solver_for(name)
    params, batch = params64(model), tiny_batch(3)
    grads, metrics = solver.meta_grad(params, batch)
    singles = [
        solver.meta_grad(params, TaskBatch(*(t[b : b + 1] for t in batch)))[0] for b in range(3)
    ]
    mean_of_singles = {k: torch.stack([s[k] for s in singles]).mean(0) for k in grads}
    assert rel_err(flat(grads), flat(mean_of_singles)) < 1e-10
    assert torch.isfinite(flat(grads)).all() and flat(grads).norm() > 0
    again, _ = solver.meta_grad(params, batch)
    assert torch.equal(flat(again), flat(grads))
    assert set(metrics) == set(METRICS)
    for name_, values in metrics.items():
        assert values.shape == (3,), name_
        if "acc" in name_:
            assert ((values >= 0) & (values <= 1)).all()
    assert set(grads) == set(params)
    assert all(grads[k].shape == params[k].shape for k in params)


def test_metrics_are_the_losses_they_name() -> None:
    model, solver = solver_for("maml")
    params, batch = params64(model), tiny_batch(2)
    _, metrics = solver.meta_grad(params, batch)
    for b in range(2):
        sx, sy, qx, qy = batch.task(b)
        fast = sgd(model, params, sx, sy, INNER_STEPS)
        with torch.no_grad():
            expect = {
                "support_loss_pre": F.cross_entropy(model(params, sx), sy),
                "support_loss_post": F.cross_entropy(model(fast, sx), sy),
                "query_loss_pre": F.cross_entropy(model(params, qx), qy),
                "query_loss_post": F.cross_entropy(model(fast, qx), qy),
                "query_acc_post": (model(fast, qx).argmax(-1) == qy).double().mean(),
            }
        for key, value in expect.items():
            assert metrics[key][b].item() == pytest.approx(value.item(), rel=1e-10), key


CURVES_ON_A_SUBSET = ("support_loss_post", "support_acc_post", "query_loss_pre", "query_acc_pre")


@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "imaml", "neumann", "penalty"])
def test_curve_tasks_measures_the_curves_own_passes_on_the_first_tasks_only(name: str) -> None:
    """The meta-gradient and the curves the solver computes anyway are unchanged; the
    curves that need their own passes have the values of the first tasks; evaluation
    measures every task whatever the setting."""
    model, full = solver_for(name)
    _, subset = solver_for(name)
    subset.curve_tasks = 2
    params, batch = params64(model), tiny_batch(n_tasks=3)
    grads, metrics = full.meta_grad(params, batch)
    sub_grads, sub_metrics = subset.meta_grad(params, batch)
    assert torch.equal(flat(sub_grads), flat(grads))
    assert set(sub_metrics) == set(metrics)
    for key, values in metrics.items():
        expected = values[:2] if key in CURVES_ON_A_SUBSET else values
        assert torch.equal(sub_metrics[key], expected), key
    evaluated = subset.evaluate(params, batch, INNER_STEPS)
    assert all(v.shape == (3,) for v in evaluated.values())


def test_evaluation_is_one_procedure_for_every_meta_solver() -> None:
    """One initialisation evaluated through every meta-solver gives identical metrics by
    default (plain SGD adaptation); iMAML's own proximal loop only when asked for."""
    model, _ = solver_for("maml")
    params, batch = params64(model), tiny_batch(n_tasks=3)
    meta = [name for name, cls in SOLVERS.items() if cls.family != "baseline"]
    results = {name: solver_for(name, lam=0.5)[1] if name == "imaml" else solver_for(name)[1]
               for name in meta}  # fmt: skip
    expected = results["maml"].evaluate(params, batch, INNER_STEPS)
    for name, solver in results.items():
        got = solver.evaluate(params, batch, INNER_STEPS)
        for metric in METRICS:
            assert torch.equal(got[metric], expected[metric]), (name, metric)
    own = results["imaml"].evaluate(params, batch, INNER_STEPS, adaptation="solver")
    assert not torch.equal(own["query_loss_post"], expected["query_loss_post"])
    # and plain SGD means the independent loop of the helpers, task by task
    for b in range(len(batch)):
        sx, sy, qx, qy = batch.task(b)
        fast = sgd(model, params, sx, sy, INNER_STEPS)
        with torch.no_grad():
            loss = F.cross_entropy(model(fast, qx), qy)
        assert expected["query_loss_post"][b].item() == pytest.approx(loss.item(), rel=1e-9)


@pytest.mark.parametrize("name", META_SOLVERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_task_loop_equals_vmap(name: str, dtype: torch.dtype) -> None:
    """The CPU path (a loop over tasks, native batch norm) and the GPU path (vmap, the
    hand-written batch norm) compute the same meta-gradient and metrics."""
    out = {}
    for mode in ("vmap", "loop"):
        model, solver = solver_for(name, batching=mode)
        assert solver.batching == mode
        params = {k: v.to(dtype) for k, v in params64(model).items()}
        batch = TaskBatch(*(t.to(dtype) if t.is_floating_point() else t for t in tiny_batch(3)))
        out[mode] = solver.meta_grad(params, batch)
    # The two paths sum in other orders (vmap's batched products, the hand-written batch
    # norm), so they agree to rounding: u = 2**-53 or 2**-24 per operation, through two inner
    # steps and a second-order backward of a four-layer network. The tolerances leave 2**10
    # (float32) and 2**19 (float64) for that to amplify, on any kernels: the paths share
    # them here. An accuracy is a count of predictions, so it agrees exactly unless a logit
    # ties to rounding (one prediction is 1/query, far beyond either tolerance).
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert rel_err(flat(out["loop"][0]), flat(out["vmap"][0])) < tol
    for metric in METRICS:
        assert torch.allclose(out["loop"][1][metric], out["vmap"][1][metric], rtol=tol, atol=tol)


def test_auto_batching_by_device() -> None:
    from raybench.batching import resolve

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve("auto", cuda) == "vmap"
    assert resolve("auto", cpu) == "loop"
    assert resolve("vmap", cpu) == "vmap"
    assert resolve("loop", cuda) == "loop"
    with pytest.raises(ValueError, match="batching"):
        resolve("both", cpu)
    # every preset loops on a CPU (measured faster there at every task size)
    from raybench.solvers import make_config, make_solver

    for preset in ("paper", "quick", "smoke"):
        solver = make_solver(make_config("maml", preset), solver_for("maml")[0])
        assert solver.batching == "loop", preset
