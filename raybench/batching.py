"""How a solver runs its per-task function over a batch of tasks: ``vmap`` or a loop.

Solvers are written per task and mapped over the batch. On a GPU the vectorised map
(``torch.func.vmap``) turns a meta-batch into one set of large kernels, which is what a
launch-bound device needs. On a CPU, vmap turns per-task weights into grouped
convolutions and streams the whole meta-batch's activations through memory, while a loop
works on one task's tensors in cache, uses torch's native batch norm and plain autograd,
and pays the per-operation overhead once per task. Measured on a 2-core AMD EPYC
(2026-12-05, one thread, ``raybench bench --ab batching=loop``: steps interleaved in one
process on the same batch; ``benchmarks/RESULTS.md``), loop time over vmap time:

| task (images x filters) | MAML | FOMAML | iMAML |
| --- | ---: | ---: | ---: |
| 80 x 64 (the paper preset; 2026-11-29) | 0.48 | 0.50 | |
| 30 x 64 | 0.86 | 0.77 | 0.95 |
| 55 x 16 | 0.83 | 0.74 | 0.84 |
| 30 x 16 (the quick preset) | 0.94 | 0.79 | 1.03 |
| 10 x 16, 2 tasks (the smoke preset) | 0.69 | 0.64 | 0.82 |

(An earlier table, before the batch norm's statistics were reduced along contiguous
dimensions and with ``torch.func`` inside the loop, had vmap ahead below about 2500 images
x filters; it no longer is. With two threads the quick preset still favours the loop for
MAML, FOMAML and Reptile, 0.85-0.97, and vmap for iMAML and Neumann, 1.09-1.17; runs use
one thread each by default.) So ``batching = auto`` (the default) picks vmap on CUDA and
the loop on a CPU. Both compute the same per-task functions, so results agree to float32
rounding (tested against each other and, in float64, against finite differences and dense
solves on both paths).

The hand-written batch norm of :mod:`raybench.models` exists because ``F.batch_norm``'s
batching rule gives wrong second-order gradients under ``grad(vmap(grad(...)))``. Inside
the loop there is no vmap, so the native kernel is used there (``native_batch_norm``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.func import vmap
from torch.utils import _pytree as pytree

from raybench.config import BATCHINGS

_NATIVE_BATCH_NORM = contextvars.ContextVar("raybench_native_batch_norm", default=False)


def resolve(batching: str, device: torch.device) -> str:
    """``vmap`` or ``loop`` for a setting and the device the run uses (the table above)."""
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {BATCHINGS}, not {batching!r}")
    if batching != "auto":
        return batching
    return "vmap" if device.type == "cuda" else "loop"


def native_batch_norm_enabled() -> bool:
    """Whether the model may use ``F.batch_norm`` (true inside a task loop, not in vmap)."""
    return _NATIVE_BATCH_NORM.get()


@contextlib.contextmanager
def native_batch_norm(enabled: bool = True) -> Iterator[None]:
    token = _NATIVE_BATCH_NORM.set(enabled)
    try:
        yield
    finally:
        _NATIVE_BATCH_NORM.reset(token)


def loop_map(fn: Callable[..., Any], in_dims: int | tuple | None = 0) -> Callable[..., Any]:
    """``vmap(fn, in_dims)``'s contract by a Python loop: each argument mapped over its
    leading axis (``None``: passed whole), outputs stacked along a new leading axis."""

    def mapped(*args: Any) -> Any:
        dims = in_dims if isinstance(in_dims, tuple) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise ValueError(f"in_dims {in_dims!r} does not match {len(args)} arguments")
        sizes = {
            leaf.shape[0]
            for arg, dim in zip(args, dims)
            if dim is not None
            for leaf in pytree.tree_leaves(arg)
        }
        if len(sizes) != 1:
            raise ValueError(f"mapped arguments disagree on the batch size: {sorted(sizes)}")
        (size,) = sizes
        outputs = []
        with native_batch_norm():
            for i in range(size):
                task = [
                    arg if dim is None else pytree.tree_map(lambda t, i=i: t[i], arg)
                    for arg, dim in zip(args, dims)
                ]
                outputs.append(fn(*task))
        return pytree.tree_map(lambda *xs: torch.stack(xs), *outputs)

    return mapped


def task_map(
    fn: Callable[..., Any],
    batching: str,
    in_dims: int | tuple | None = 0,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """``fn`` mapped over tasks the way ``batching`` (``vmap`` or ``loop``) says;
    ``chunk_size`` bounds vmap's memory (a loop holds one at a time anyway)."""
    if batching == "vmap":
        return vmap(fn, in_dims=in_dims, chunk_size=chunk_size)
    if batching == "loop":
        return loop_map(fn, in_dims)
    raise ValueError(f"unresolved batching {batching!r}: resolve it for a device first")
