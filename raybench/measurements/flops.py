"""How much arithmetic a meta-step is, and how fast this machine multiplies matrices.

Milliseconds per step say little across machines; the fraction of the machine's own
matrix-multiply rate that a step achieves does. A step's floating-point operations are
counted once per solver and setting with ``torch.utils.flop_counter`` (convolutions and
matrix products; element-wise work is not counted, as usual), on the per-task form of the
solver: that is the algorithm's arithmetic. (Under ``vmap`` the same step issues more
counted operations, because batching rules for per-task weights do some work twice, which
is exactly the overhead such a fraction should expose.) The matrix-multiply rate is a
square float32 product, timed in the same process with the same threads, right after the
step it is compared with.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from raybench.runtime import sync

MATMUL_SIZE = 1024


def count_flops(step: Callable[[], Any]) -> int:
    """Floating-point operations of one call of ``step`` (FlopCounterMode's count)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def matmul_gflops(
    n: int = MATMUL_SIZE,
    repeats: int = 10,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> float:
    """The machine's float32 matrix-multiply rate in GFLOP/s: the median of ``repeats``
    timed ``n x n`` products after two untimed ones, with this process's threads."""
    device = device or torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=generator, dtype=dtype, device=device)
    b = torch.randn(n, n, generator=generator, dtype=dtype, device=device)
    times = []
    for i in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def achieved(flops: int | None, ms_per_step: float | None) -> float | None:
    """GFLOP/s of a step of ``flops`` operations taking ``ms_per_step``."""
    if not flops or not ms_per_step:
        return None
    return flops / (ms_per_step / 1000) / 1e9
