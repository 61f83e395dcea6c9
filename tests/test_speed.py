"""The GPU speed switches, as far as a CPU can check them: the eager path is the solver,
and asking for a CUDA graph without CUDA is a clear error, not a silent fallback."""

from __future__ import annotations

import pytest
import torch
from helpers import params64, solver_for, tiny_batch

from raybench.data import OmniglotImages
from raybench.errors import RaybenchError
from raybench.solvers import make_config
from raybench.speed import meta_step, outer_optimiser
from raybench.train import train


def test_eager_meta_step_is_the_solver() -> None:
    model, solver = solver_for("maml")
    params, batch = params64(model), tiny_batch(2)
    step = meta_step(solver, params, batch, cuda_graph=False, device=torch.device("cpu"))
    grads, metrics = step(batch)
    expected, _ = solver.meta_grad(params, batch)
    assert all(torch.equal(grads[k], expected[k]) for k in params)
    assert set(metrics) == set(solver.meta_grad(params, batch)[1])


def test_cuda_graph_without_cuda_is_an_error(omniglot: OmniglotImages) -> None:
    model, solver = solver_for("fomaml")
    params, batch = params64(model), tiny_batch(1)
    with pytest.raises(RaybenchError, match="cuda_graph=true needs a CUDA device"):
        meta_step(solver, params, batch, cuda_graph=True, device=torch.device("cpu"))
    with pytest.raises(RaybenchError, match="needs device cuda or auto"):
        make_config("fomaml", "smoke", {"cuda_graph": "true", "device": "cpu"})
    if torch.cuda.is_available():
        return
    # commands refuse it up front (tests/test_errors.py); a run given it anyway fails, stored
    config = make_config("fomaml", "smoke", {"cuda_graph": "true", "device": "auto"})
    assert config.cuda_graph is True
    result = train(config, omniglot)
    assert result.status == "failed" and "needs a CUDA device" in result.error


def test_outer_optimiser_is_plain_adam_on_cpu() -> None:
    params = {"w": torch.zeros(3)}
    optimiser = outer_optimiser(params, 0.1, torch.device("cpu"))
    assert isinstance(optimiser, torch.optim.Adam) and not optimiser.defaults["fused"]
