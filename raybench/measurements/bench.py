"""``raybench bench``: milliseconds per meta-step and memory of every solver, beside the
per-task loop that the report's listings describe, timed the same way in the same run.

A meta-step is what training does (``meta_grad`` on a meta-batch, then the outer Adam step)
on a fixed batch after warm-up with the timed step itself, with the device synchronised
around each timed step; the figure is the median, reported with the minimum, the maximum
and the number of timed steps, and flagged when they spread widely or the CPU was busy.
The reference loops (``raybench.reference``) stand in for MAML and FOMAML through the same
code path, so the ratio compares implementations, not harnesses. Each row also has the
step's arithmetic (FLOPs, counted once on the solver's per-task form), the rate it achieves
and its fraction of the same process's float32 matrix-multiply rate
(:mod:`raybench.measurements.flops`): a figure comparable across machines. On the CPU each
measurement runs in a fresh process (comparable memory, no interference between solvers)
with one torch thread unless told otherwise, as each run of ``raybench run`` gets by
default; on a GPU all run in this one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from raybench.config import RunConfig

if TYPE_CHECKING:
    import torch

    from raybench.measurements.measure import Measurement

SCHEMA_VERSION = 3  # 2: ms_max, timed and warm-up steps, spread, CPU load; 3: FLOPs, peak
REFERENCES = ("maml", "fomaml")
SPREAD_WARNING = 0.25  # (max - min) / median above this: the row's timings are not stable
MIN_STABLE_STEPS = 5


@dataclass(frozen=True)
class Timing:
    """How many meta-steps to time: at least ``steps``, then more (up to ``max_steps``)
    until ``min_time_s`` seconds are timed; ``warmup`` untimed steps first."""

    steps: int
    warmup: int
    max_steps: int | None = None
    min_time_s: float = 0.0

    def describe(self) -> str:
        if not self.max_steps or self.max_steps <= self.steps:
            return f"{self.steps} timed step(s) after {self.warmup} warm-up"
        return (
            f"at least {self.steps} timed steps (more, up to {self.max_steps}, until "
            f"{self.min_time_s:g} s are timed) after {self.warmup} warm-up"
        )


def default_timing(device: torch.device) -> Timing:
    """Enough steps for a stable median: 20 on a GPU (milliseconds each); on a CPU, where a
    paper-preset step takes seconds, at least 5 and up to 50 until 15 s are timed (a few
    minutes for every solver at the paper preset, seconds at ``smoke``)."""
    if device.type == "cuda":
        return Timing(20, 5)
    return Timing(MIN_STABLE_STEPS, 2, max_steps=50, min_time_s=15.0)


def reference_for(family: str) -> str:
    """The loop a solver is compared with: exact second order for solvers that use
    curvature, first order for the rest."""
    return "fomaml" if family in ("first-order", "baseline") else "maml"


def cpu_load() -> float | None:
    """The 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def bench_table(
    configs: Sequence[RunConfig],
    data: Any,
    *,
    steps: int | None = None,
    warmup: int | None = None,
    with_reference: bool = True,
    threads: int | None = None,
    experiment: str = "bench",
) -> pa.Table:
    """One row per solver, then one per reference loop, with each solver's speed-up over
    its loop when the loop was measured. ``steps`` fixes the number of timed steps (else
    :func:`default_timing`); on the CPU ``threads`` defaults to 1."""
    from raybench.measurements.measure import measure, measure_isolated
    from raybench.runtime import resolve_device
    from raybench.solvers import solver_class

    cases: list[tuple[RunConfig, bool]] = [(c, False) for c in configs]
    if with_reference:
        base = configs[0]
        for name in REFERENCES:
            cases.append((_as_solver(base, name), True))
    device = resolve_device(configs[0].device)
    timing = default_timing(device)
    if steps is not None:
        timing = Timing(steps, timing.warmup)
    if warmup is not None:
        timing = Timing(timing.steps, warmup, timing.max_steps, timing.min_time_s)
    on_gpu = device.type == "cuda"
    rows: list[dict[str, Any]] = []
    for config, is_loop in cases:
        load = cpu_load()
        kw: dict[str, Any] = {
            "steps": timing.steps,
            "warmup": timing.warmup,
            "max_steps": timing.max_steps,
            "min_time_s": timing.min_time_s,
            "full_warmup": True,
            "reference": is_loop,
            "flops": True,
        }
        if on_gpu:
            m = measure(config, data, **kw)
        else:
            m = measure_isolated(config, threads=threads or 1, for_timing=True, **kw)
        row = _row(config, m, is_loop, solver_class(config.solver).family, experiment)
        row["cpu_load"] = load
        rows.append(row)
    loops = {r["solver"]: r["ms_per_step"] for r in rows if r["implementation"] == "reference loop"}
    for row in rows:
        if row["implementation"] != "reference loop":
            row["reference"] = f"{reference_for(row['family'])} loop"
            loop = loops.get(reference_for(row["family"]))
            if loop and row["ms_per_step"]:
                row["speedup_vs_loop"] = loop / row["ms_per_step"]
    return pa.Table.from_pylist(rows, schema=BENCH_SCHEMA)


def _as_solver(config: RunConfig, solver: str) -> RunConfig:
    from raybench.configfile import config_from_dict

    data = config.to_dict()
    data.update(solver=solver, solver_options={}, cuda_graph=False, compile=False)  # eager
    return config_from_dict(data)


def _row(
    config: RunConfig, m: Measurement, is_loop: bool, family: str, experiment: str
) -> dict[str, Any]:
    from raybench.measurements.flops import achieved
    from raybench.runtime import git_commit, library_versions
    from raybench.solvers.base import task_mapping

    ms = m.ms_per_step
    rate = achieved(m.flops_per_step, ms)
    return {
        "schema_version": SCHEMA_VERSION,
        "bench_id": hashlib.sha1(config.to_json().encode()).hexdigest()[:10],
        "experiment": experiment,
        "solver": config.solver,
        "family": family,
        # how the solver maps tasks here (vmap or loop), or the reference loop
        "implementation": "reference loop" if is_loop else task_mapping(config),
        "reference": None,
        "ms_per_step": ms,
        "ms_min": m.ms_min,
        "ms_max": m.ms_max,
        "spread": spread(ms, m.ms_min, m.ms_max),
        "timed_steps": m.timed_steps,
        "warmup_steps": m.warmup_steps,
        "speedup_vs_loop": None,
        "implied_run_s": None if ms is None else ms * config.meta_steps / 1000,
        "meta_steps": config.meta_steps,
        "peak_memory_mb": m.peak_memory_mb,
        "memory_kind": m.memory_kind,
        "flops_per_step": m.flops_per_step,
        "gflops": rate,
        "matmul_gflops": m.matmul_gflops,
        "peak_fraction": None if rate is None or not m.matmul_gflops else rate / m.matmul_gflops,
        "device": m.device,
        "threads": m.threads,
        "torch_version": library_versions()["torch"],
        "preset": config.preset,
        "ways": config.ways,
        "shots": config.shots,
        "query": config.query,
        "meta_batch": config.meta_batch,
        "inner_steps": config.inner_steps,
        "hidden": config.hidden,
        "dtype": config.dtype,
        "config_json": config.to_json(),
        "error": m.error,
        "git_commit": git_commit(),
        "created_at": datetime.now(timezone.utc),
    }


BENCH_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int32()),
        pa.field("bench_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("solver", pa.string()),
        pa.field("family", pa.string()),
        pa.field("implementation", pa.string()),
        pa.field("reference", pa.string()),
        pa.field("ms_per_step", pa.float64()),
        pa.field("ms_min", pa.float64()),
        pa.field("ms_max", pa.float64()),
        pa.field("spread", pa.float64()),  # (max - min) / median of the timed steps
        pa.field("timed_steps", pa.int64()),
        pa.field("warmup_steps", pa.int64()),
        pa.field("cpu_load", pa.float64()),  # 1-minute load average before the row
        pa.field("speedup_vs_loop", pa.float64()),
        pa.field("implied_run_s", pa.float64()),
        pa.field("meta_steps", pa.int64()),
        pa.field("peak_memory_mb", pa.float64()),
        pa.field("memory_kind", pa.string()),
        pa.field("flops_per_step", pa.int64()),  # counted on the per-task form
        pa.field("gflops", pa.float64()),  # achieved: flops_per_step / median time
        pa.field("matmul_gflops", pa.float64()),  # float32 matmul, same process and threads
        pa.field("peak_fraction", pa.float64()),  # gflops / matmul_gflops
        pa.field("device", pa.string()),
        pa.field("threads", pa.int64()),
        pa.field("torch_version", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("ways", pa.int64()),
        pa.field("shots", pa.int64()),
        pa.field("query", pa.int64()),
        pa.field("meta_batch", pa.int64()),
        pa.field("inner_steps", pa.int64()),
        pa.field("hidden", pa.int64()),
        pa.field("dtype", pa.string()),
        pa.field("config_json", pa.string()),
        pa.field("error", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def spread(median: float | None, low: float | None, high: float | None) -> float | None:
    """(max - min) / median of the timed steps: 0 for identical steps."""
    if median is None or low is None or high is None or not median > 0:
        return None
    return (high - low) / median


def bench_warnings(table: pa.Table) -> list[str]:
    """What makes the table's times doubtful, one line each: rows whose timed steps spread
    widely, too few timed steps for a stable median, a busy CPU while timing."""
    rows = table.to_pylist()
    out = []
    for row in rows:
        name = f"{row['solver']} ({row['implementation']})"
        s, n = row.get("spread"), row.get("timed_steps")
        if s is not None and s > SPREAD_WARNING:
            out.append(
                f"{name}: its timed steps spread by {s:.0%} of the median (min "
                f"{row['ms_min']:.1f}, median {row['ms_per_step']:.1f}, max "
                f"{row['ms_max']:.1f} ms over {n} steps): something else took the CPU or "
                "GPU; rerun on a quiet machine, or with more --steps"
            )
        if n is not None and 0 < n < MIN_STABLE_STEPS:
            out.append(
                f"{name}: only {n} timed step(s); a median needs at least "
                f"{MIN_STABLE_STEPS} to be stable (--steps)"
            )
    cores = os.cpu_count() or 1
    loads = [r["cpu_load"] for r in rows if r.get("cpu_load") is not None]
    cpu = any(str(r.get("device", "")).startswith("cpu") for r in rows)
    if cpu and loads and max(loads) > cores - 0.5:
        out.append(
            f"the CPU was busy while timing (1-minute load average up to {max(loads):.1f} on "
            f"{cores} cores): times are longer and noisier than on a quiet machine"
        )
    return out
