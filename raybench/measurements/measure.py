"""Time and memory of meta-steps, as ``raybench scaling`` and ``raybench bench`` measure them.

A meta-step here is what the trainer does: ``meta_grad`` on one training batch, then the
outer Adam step, on a fixed batch, with the device synchronised around each timed step.
Memory is the step's own: on CUDA ``max_memory_allocated`` minus what was allocated before
the step; on the CPU the growth of the resident set (peak after a ``/proc/self/clear_refs``
reset, minus the RSS before the step). The CPU figure is only clean in a fresh process whose
allocator returns freed blocks to the system, so a measurement can run in its own
``python -m raybench.measurements.measure`` subprocess with glibc's mmap threshold pinned low;
measuring in one process, every later measurement would reuse memory the earlier ones left
mapped and show almost no growth. (Returning memory at once costs page faults, which such
CPU times include; timing runs, ``for_timing``, keep the allocator's defaults.)
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from raybench.config import RunConfig
from raybench.runtime import proc_status_mb, sync


@dataclass(frozen=True)
class Measurement:
    """What one measurement gives; plain numbers, JSON-friendly."""

    ms_per_step: float | None = None  # median over the timed steps
    ms_min: float | None = None
    ms_max: float | None = None
    timed_steps: int = 0
    warmup_steps: int = 0
    peak_memory_mb: float | None = None
    memory_kind: str = ""
    device: str = ""
    threads: int = 0
    n_params: int = 0
    flops_per_step: int | None = None  # counted on the per-task form (studies.flops)
    matmul_gflops: float | None = None  # this process's float32 matmul rate, same threads
    error: str | None = None


def _current_mb(device: torch.device) -> float:
    """What is in use now: allocated CUDA memory, or the process's resident set."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    resident = proc_status_mb("VmRSS")
    return math.nan if resident is None else resident


def return_freed_memory() -> bool:
    """Make glibc give freed blocks above 64 KiB back to the system at once (fixed mmap and
    trim thresholds), so the resident set follows what is really in use; False where the C
    library has no ``mallopt``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 64 * 1024)) and bool(
            libc.mallopt(m_trim_threshold, 128 * 1024)
        )
    except (OSError, AttributeError):
        return False


def keep_timing(times_ms: Sequence[float], steps: int, max_steps: int, min_time_s: float) -> bool:
    """Whether to time another step: until ``steps`` are timed, then on (up to
    ``max_steps``) while less than ``min_time_s`` seconds have been timed, so that fast
    steps get a sample large enough for a stable median and slow ones do not take hours."""
    if len(times_ms) < steps:
        return True
    return len(times_ms) < max_steps and sum(times_ms) < 1000 * min_time_s


def measure(
    config: RunConfig,
    data: Any,
    *,
    steps: int = 3,
    warmup: int = 1,
    max_steps: int | None = None,
    min_time_s: float = 0.0,
    full_warmup: bool = False,
    isolated: bool = False,
    reference: bool = False,
    process_peak: bool = False,
    flops: bool = False,
) -> Measurement:
    """Time and memory of at least ``steps`` meta-steps (more, up to ``max_steps``, until
    ``min_time_s`` are timed) after ``warmup`` untimed ones, in this process. The warm-up
    matters: the first step pays one-time costs (lazy imports and initialisation, kernel
    selection, the allocator growing to the step's peak; some 200 MiB of RSS on the CPU)
    that are not the solver's. Warm-up steps use one inner step (same kernels, cheap at 20
    inner steps) unless ``full_warmup``, which warms with the timed step itself. With
    ``flops``, the step's arithmetic is counted and the machine's matrix-multiply rate
    measured right after the timed steps (:mod:`raybench.measurements.flops`)."""
    from raybench.run_setup import build_run
    from raybench.runtime import PeakMemory, device_name
    from raybench.solvers import make_solver
    from raybench.speed import MetaStep, meta_step, outer_step

    setup = build_run(config, data, parts=("train",))
    device, model, params, optimiser = setup.device, setup.model, setup.params, setup.optimiser
    solver = setup.solver
    warm_steps = config.inner_steps if full_warmup else min(config.inner_steps, 1)
    warm = make_solver(replace(config, inner_steps=warm_steps), model)
    if reference:  # the per-task loop of raybench.reference in the solver's place
        from raybench.reference import LoopReference

        solver, warm = LoopReference(solver), LoopReference(warm)
    batch = solver.train_batch(setup.tasks("train"), config.meta_batch, setup.generator())
    timed = meta_step(solver, params, batch, cuda_graph=config.cuda_graph, device=device)
    warming = meta_step(warm, params, batch, cuda_graph=False, device=device)
    if config.cuda_graph:  # the capture warms up on its own, with the real inner steps
        warmup = 0

    def step(meta: MetaStep = timed) -> None:
        grads, _ = meta(batch)
        outer_step(params, grads, optimiser)

    memory = PeakMemory(device)
    times: list[float] = []
    peaks: list[float] = []
    upper = max(steps, max_steps or steps)
    try:
        for _ in range(warmup):
            step(warming)
        while keep_timing(times, steps, upper, min_time_s):
            memory.reset()  # syncs on CUDA; on the CPU the peak restarts from the current RSS
            before = _current_mb(device)
            start = time.perf_counter()
            step()
            sync(device)
            times.append(1000 * (time.perf_counter() - start))
            peaks.append(memory.read_mb() - before)
    except Exception as exc:  # out of memory at many inner steps is a result, not a crash
        return Measurement(
            device=device_name(device),
            threads=torch.get_num_threads(),
            error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
        )
    flops_per_step = rate = None
    if flops:
        from raybench.measurements.flops import count_flops, matmul_gflops

        rate = matmul_gflops(device=device)
        counted = solver
        if not reference:  # the algorithm's arithmetic: its per-task form
            counted = make_solver(replace(config, batching="loop", compile=False), model)
        flops_per_step = count_flops(lambda: counted.meta_grad(params, batch))
    kind = memory.kind + "_delta"
    if device.type == "cpu" and not isolated:
        kind += "_in_process"  # polluted by earlier measurements: see the module docstring
    if process_peak and device.type == "cpu":
        # Timing runs keep glibc's allocator as it is (returning memory at once costs page
        # faults that would dominate the times), so the step's own growth is not visible:
        # report the fresh process's peak resident set instead, comparable across solvers.
        peaks = [memory.read_mb()]
        kind = "cpu_process_peak_rss"
    return Measurement(
        ms_per_step=statistics.median(times),
        ms_min=min(times),
        ms_max=max(times),
        timed_steps=len(times),
        warmup_steps=warmup,
        peak_memory_mb=statistics.median(peaks),
        memory_kind=kind,
        device=device_name(device),
        threads=torch.get_num_threads(),
        n_params=sum(p.numel() for p in params.values()),
        flops_per_step=flops_per_step,
        matmul_gflops=rate,
    )


def measure_isolated(
    config: RunConfig,
    *,
    steps: int = 3,
    warmup: int = 1,
    max_steps: int | None = None,
    min_time_s: float = 0.0,
    full_warmup: bool = False,
    threads: int | None = None,
    data_dir: Path | None = None,
    timeout_s: float | None = None,
    reference: bool = False,
    for_timing: bool = False,
    flops: bool = False,
) -> Measurement:
    """:func:`measure` in a fresh ``python -m raybench.measurements.measure`` process.
    ``for_timing`` keeps the allocator's defaults (see :func:`measure`'s ``process_peak``)."""
    command = [
        sys.executable, "-m", "raybench.measurements.measure", "--config", config.to_json(),
        "--steps", str(steps), "--warmup", str(warmup), "--min-time", str(min_time_s),
    ]  # fmt: skip
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    if full_warmup:
        command += ["--full-warmup"]
    if threads:
        command += ["--threads", str(threads)]
    if reference:
        command += ["--reference"]
    if for_timing:
        command += ["--for-timing"]
    if flops:
        command += ["--flops"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        return Measurement(error=f"timed out after {timeout_s:g} s")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        why = (proc.stderr.strip().splitlines() or [""])[-1][:300]
        killed = " (killed: out of memory?)" if proc.returncode in (-9, 137) else ""
        return Measurement(error=f"measurement process exited with {proc.returncode}{killed} {why}")
    return Measurement(**json.loads(lines[-1]))


def _main(argv: Sequence[str] | None = None) -> None:
    """Child process: measure one config, print the measurement as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m raybench.measurements.measure")
    parser.add_argument("--config", required=True, help="RunConfig as JSON")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--min-time", type=float, default=0.0)
    parser.add_argument("--full-warmup", action="store_true", help="warm up with the timed step")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--reference", action="store_true", help="time the per-task loop")
    parser.add_argument("--for-timing", action="store_true", help="keep the allocator as is")
    parser.add_argument("--flops", action="store_true", help="count FLOPs, time a matmul")
    args = parser.parse_args(argv)
    if not args.for_timing:
        return_freed_memory()  # before anything big is allocated
    if args.threads:
        torch.set_num_threads(args.threads)
    from raybench.data import load_omniglot

    config = RunConfig(**json.loads(args.config))
    data = load_omniglot(args.data_dir, download=False)
    m = measure(
        config,
        data,
        steps=args.steps,
        warmup=args.warmup,
        max_steps=args.max_steps,
        min_time_s=args.min_time,
        full_warmup=args.full_warmup,
        isolated=True,
        reference=args.reference,
        process_peak=args.for_timing,
        flops=args.flops,
    )
    print(json.dumps(asdict(m)), flush=True)


if __name__ == "__main__":
    _main()
