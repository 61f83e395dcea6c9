"""``raybench bench --ab KEY=VALUE``: two configurations of a solver timed in one process.

Machine speed drifts between sessions and within one (other jobs, thermal state), so a
speed-up is measured as a ratio within one process, never as two absolute times taken
apart. A is the configuration as given, B the same with the ``--ab`` settings changed.
Both are built side by side on the same training batch, warmed up, then timed in rounds,
each round one step of each in alternating order (AB, BA, AB, ...), so drift hits both
alike. Each round gives a ratio ``B / A``; the result is their median with the spread
(lowest and highest), each side's median ms per step, the arithmetic of the step
(counted once on the per-task form), and its fraction of the same process's float32
matrix-multiply rate. The two meta-gradients at the common starting point are compared
too: a change that is only about speed must leave them equal up to rounding.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from raybench.config import RunConfig
from raybench.errors import ParameterError

# What must be equal for the two sides to draw the same batch and be one comparison.
SAME_BATCH = ("solver", "ways", "shots", "query", "meta_batch", "rotations", "split", "dtype")
# What must be equal for B to start from A's parameters: the network's shape.
SAME_NETWORK = ("hidden", "bn", "activation", "pooling")


@dataclass(frozen=True)
class ABResult:
    """One solver, A against B: plain numbers."""

    solver: str
    changed: str  # the ``--ab`` settings, ``key=value ...``
    rounds: int
    ms_a: float  # median ms per meta-step
    ms_b: float
    ratio: float  # median over the rounds of B's time / A's time
    ratio_low: float
    ratio_high: float
    gflop_a: float | None  # arithmetic of one step (per-task form), GFLOP
    gflop_b: float | None
    matmul_gflops: float | None  # this process's float32 matmul rate, same threads
    grad_difference: float  # max |g_B - g_A| / max |g_A| at the common start
    threads: int
    device: str

    def fraction(self, side: str) -> float | None:
        """The step's achieved rate as a fraction of the matmul rate."""
        gflop, ms = (self.gflop_a, self.ms_a) if side == "a" else (self.gflop_b, self.ms_b)
        if gflop is None or not self.matmul_gflops or ms <= 0:
            return None
        return gflop / (ms / 1000) / self.matmul_gflops


def check_pair(a: RunConfig, b: RunConfig) -> None:
    """A and B one comparison: the same network and the same batch."""
    for key in SAME_NETWORK:
        if getattr(a, key) != getattr(b, key):
            raise ParameterError(
                "{ab} changes {key}: B would need another network than A's starting point; "
                "an A/B keeps {kept} equal (time two networks with two `raybench bench` "
                "runs)",
                key=key,
                kept=", ".join(SAME_NETWORK),
            )
    for key in SAME_BATCH:
        if getattr(a, key) != getattr(b, key):
            raise ParameterError(
                "{ab} changes {key}: A and B would not train on the same batch; an A/B "
                "comparison keeps {kept} equal",
                key=key,
                kept=", ".join(SAME_BATCH),
            )


class _Side:
    """One configuration ready to step: its run setup (own parameters and optimiser) and
    the common batch."""

    def __init__(self, setup: Any, batch: Any) -> None:
        from raybench.speed import meta_step

        self.config, self.model, self.solver = setup.config, setup.model, setup.solver
        self.params, self.optimiser, self.device = setup.params, setup.optimiser, setup.device
        self.batch = batch
        self.meta = meta_step(self.solver, self.params, batch, cuda_graph=False, device=self.device)

    def step(self) -> float:
        """One timed meta-step (gradient and outer Adam), in ms."""
        from raybench.runtime import sync
        from raybench.speed import outer_step

        start = time.perf_counter()
        grads, _ = self.meta(self.batch)
        outer_step(self.params, grads, self.optimiser)
        sync(self.device)
        return 1000 * (time.perf_counter() - start)

    def gflop(self) -> float:
        from raybench.measurements.flops import count_flops
        from raybench.solvers import make_solver

        counted = make_solver(replace(self.config, batching="loop", compile=False), self.model)
        return count_flops(lambda: counted.meta_grad(self.params, self.batch)) / 1e9


def grad_difference(a: dict, b: dict) -> float:
    """Largest absolute difference of two meta-gradients over the largest entry of A's."""
    scale = max(float(g.abs().max()) for g in a.values()) or 1.0
    return max(float((b[k] - a[k]).abs().max()) for k in a) / scale


def ab_compare(
    a: RunConfig, b: RunConfig, data: Any, *, rounds: int = 10, warmup: int = 2
) -> ABResult:
    """Time ``a`` and ``b`` in this process, interleaved (see the module docstring)."""
    from raybench.measurements.flops import matmul_gflops
    from raybench.run_setup import build_run
    from raybench.runtime import device_name

    check_pair(a, b)
    start = build_run(a, data, parts=("train",))
    device = start.device
    batch = start.solver.train_batch(start.tasks("train"), a.meta_batch, start.generator())
    sides = [_Side(start.variant(a), batch), _Side(start.variant(b), batch)]
    grads = [side.meta(batch)[0] for side in sides]  # at the common start, before any step
    difference = grad_difference(*grads)
    for _ in range(warmup):
        for side in sides:
            side.step()
    times: list[list[float]] = [[], []]
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            times[i].append(sides[i].step())
    ratios = [tb / ta for ta, tb in zip(*times)]
    gflops = [side.gflop() for side in sides]
    return ABResult(
        solver=a.solver,
        changed=changed_settings(a, b),
        rounds=rounds,
        ms_a=statistics.median(times[0]),
        ms_b=statistics.median(times[1]),
        ratio=statistics.median(ratios),
        ratio_low=min(ratios),
        ratio_high=max(ratios),
        gflop_a=gflops[0],
        gflop_b=gflops[1],
        matmul_gflops=matmul_gflops(device=device),
        grad_difference=difference,
        threads=torch.get_num_threads(),
        device=device_name(device),
    )


def changed_settings(a: RunConfig, b: RunConfig) -> str:
    """``key=value`` for every setting B changes (solver options as ``solver.knob``)."""
    out = []
    for key, value in ((f.name, getattr(b, f.name)) for f in fields(b)):
        if key == "solver_options":
            for knob, v in value.items():
                if a.solver_options.get(knob) != v:
                    out.append(f"{b.solver}.{knob}={v}")
        elif getattr(a, key) != value:
            out.append(f"{key}={value}")
    return " ".join(out) or "nothing"
