"""What makes a meta-step fast on a GPU, kept out of the solvers' math.

A vectorised meta-step is thousands of small kernels: on an H100 most of its time is
launch overhead (issue 5 measured ~100-130 ms for plain vmapped MAML against ~32 ms for the
same computation replayed from a CUDA graph). So on CUDA the step can be captured once and
replayed (``cuda_graph = true``): the batch is copied into static buffers, the graph replays
the whole meta-gradient, and its outputs are read before the next replay. The meta-parameters
are the same tensors Adam updates in place, so each replay sees the new values. Nothing here
changes a result: a captured step computes exactly what the eager one does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from raybench.errors import RaybenchError
from raybench.models import Params

MetaStep = Callable[[Any], tuple[Params, dict[str, Tensor]]]


def configure_device(device: torch.device) -> None:
    """Per-process switches that only pay off (and only apply) on CUDA: cuDNN picks the
    fastest convolution algorithm for our fixed shapes. TF32 stays off: reduced precision is
    an explicit, recorded choice (``dtype``), never a silent one."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def outer_optimiser(params: Params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam over the meta-parameters; the fused kernel on CUDA (one launch per step)."""
    return torch.optim.Adam(list(params.values()), lr=lr, fused=device.type == "cuda")


def outer_step(params: Params, grads: Params, optimiser: torch.optim.Optimizer) -> None:
    """The outer update: each meta-gradient as its parameter's gradient, then one step of
    the optimiser (training, bench and the A/B all step so)."""
    for name, p in params.items():
        p.grad = grads[name]
    optimiser.step()


def _rebuild(batch: Any, tensors: list[Tensor]) -> Any:
    return type(batch)(*tensors) if hasattr(batch, "_fields") else tuple(tensors)


class GraphedMetaStep:
    """``solver.meta_grad`` captured in a CUDA graph for one batch shape, then replayed."""

    def __init__(self, solver: Any, params: Params, example: Any, warmup: int = 3) -> None:
        self.static = _rebuild(example, [t.clone() for t in example])
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up off the default stream, as capture needs
            for _ in range(warmup):
                solver.meta_grad(params, self.static)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.grads, self.metrics = solver.meta_grad(params, self.static)

    def __call__(self, batch: Any) -> tuple[Params, dict[str, Tensor]]:
        for static, fresh in zip(self.static, batch, strict=True):
            static.copy_(fresh)
        self.graph.replay()
        return self.grads, self.metrics


def meta_step(
    solver: Any, params: Params, example: Any, *, cuda_graph: bool, device: torch.device
) -> MetaStep:
    """The function a training step calls: the solver itself, or its captured graph."""
    if not cuda_graph:
        return lambda batch: solver.meta_grad(params, batch)
    if device.type != "cuda":
        raise RaybenchError("cuda_graph=true needs a CUDA device (set it false on a CPU)")
    return GraphedMetaStep(solver, params, example)
