"""The ``compile`` setting: torch.compile around the task loop's per-task functions gives
the eager meta-gradient and metrics (float64, so any difference is a wrong graph, not
rounding), really compiles, and compiles once per shape rather than at every step."""

from __future__ import annotations

import pytest
import torch
from helpers import flat, params64, rel_err, solver_for, tiny_batch
from torch._dynamo.utils import counters

from raybench.solvers import METRICS


@pytest.mark.slow
@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile"])
def test_compiled_meta_gradient_equals_eager(name: str) -> None:
    model, eager = solver_for(name, batching="loop")
    _, compiled = solver_for(name, batching="loop", compile=True)
    assert compiled.compile and not eager.compile
    params = params64(model)
    batch = tiny_batch(3)
    torch._dynamo.reset()  # graphs compiled by an earlier test would count as reused
    counters.clear()
    first = compiled.meta_grad(params, batch)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1, dict(counters["stats"])  # it compiled
    second = compiled.meta_grad(params, batch)
    assert counters["stats"]["unique_graphs"] == graphs  # and reused the graphs
    grads, metrics = eager.meta_grad(params, batch)
    assert float(flat(grads).abs().max()) > 1e-6  # a meta-gradient worth comparing
    for out in (first, second):
        assert rel_err(flat(out[0]), flat(grads)) < 1e-10
        for metric in METRICS:
            assert torch.allclose(out[1][metric], metrics[metric], rtol=1e-10, atol=1e-12)


def test_compile_only_where_declared_and_in_the_loop() -> None:
    assert not solver_for("imaml", batching="loop", compile=True)[1].compile
    assert not solver_for("maml", batching="vmap", compile=True)[1].compile
    maml = solver_for("maml", batching="loop", compile=True)[1]
    assert maml.compile and not maml.autograd_in_loop  # traced graphs need torch.func
