"""Memory and time of one meta-step as the number of inner steps grows.

The report's claim to check: explicit MAML and the penalty method keep the graph of every
inner step, so their memory grows linearly with the inner steps; first-order solvers
(FOMAML, Reptile) and implicit ones (iMAML, Neumann) never differentiate through the inner
loop, so theirs stays flat. (Time grows for every solver: each runs its inner loop.)

A meta-step here is what the trainer does: ``meta_grad`` on one training batch, then the
outer Adam step, at the preset's settings with ``inner_steps`` changed. Memory is the step's
own: on CUDA ``max_memory_allocated`` minus what was allocated before the step; on the CPU
the growth of the resident set (peak after a ``/proc/self/clear_refs`` reset, minus the RSS
before the step). The CPU figure is only clean in a fresh process whose allocator returns
freed blocks to the system, so by default each (solver, inner steps) is measured in its own
``python -m raybench.studies.scaling`` subprocess with glibc's mmap threshold pinned low;
measuring in one process, every later measurement would reuse memory the earlier ones left
mapped and show almost no growth. (Returning memory at once costs page faults, which the
CPU times include: compare them between solvers and inner steps, not with ``raybench run``.)

The fine-tuning baselines' step is a pre-training step: the inner steps only matter at
evaluation, so they are measured once and marked ``inner_steps_matter = false``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from raybench.config import RunConfig
from raybench.errors import RaybenchError
from raybench.runtime import proc_status_mb
from raybench.solvers.base import family_rank

SCHEMA_VERSION = 1
DEFAULT_INNER_STEPS = (1, 2, 5, 10, 20)

# The report's expected shape of memory against inner steps, by solver family.
EXPECTED = {"second-order": "grows", "penalty": "grows", "first-order": "flat", "implicit": "flat"}
GROWTH_FRACTION = 0.2  # "grows": more than this fraction of the first value...
NOISE_MB = 2.0  # ...and more than this many MiB (the jitter of CPU RSS readings)


SCALING_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int32()),
        pa.field("study_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("solver", pa.string()),
        pa.field("family", pa.string()),
        pa.field("inner_steps", pa.int64()),
        pa.field("inner_steps_matter", pa.bool_()),
        pa.field("ms_per_step", pa.float64()),  # median over the timed steps
        pa.field("ms_min", pa.float64()),
        pa.field("peak_memory_mb", pa.float64()),  # median over the timed steps
        pa.field("memory_kind", pa.string()),
        pa.field("isolated", pa.bool_()),
        pa.field("timed_steps", pa.int64()),
        pa.field("warmup_steps", pa.int64()),
        pa.field("threads", pa.int64()),
        pa.field("device", pa.string()),
        pa.field("meta_batch", pa.int64()),
        pa.field("ways", pa.int64()),
        pa.field("shots", pa.int64()),
        pa.field("query", pa.int64()),
        pa.field("hidden", pa.int64()),
        pa.field("inner_lr", pa.float64()),
        pa.field("dtype", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("n_params", pa.int64()),
        pa.field("config_fingerprint", pa.string()),
        pa.field("config_json", pa.string()),
        pa.field("error", pa.string()),
        pa.field("torch_version", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Measurement:
    """What one (solver, inner steps) measurement gives; plain numbers, JSON-friendly."""

    ms_per_step: float | None = None
    ms_min: float | None = None
    peak_memory_mb: float | None = None
    memory_kind: str = ""
    device: str = ""
    threads: int = 0
    n_params: int = 0
    error: str | None = None


def _current_mb(device: torch.device) -> float:
    """What is in use now: allocated CUDA memory, or the process's resident set."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    resident = proc_status_mb("VmRSS")
    return math.nan if resident is None else resident


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def measure(
    config: RunConfig,
    data: Any,
    *,
    steps: int = 3,
    warmup: int = 1,
    isolated: bool = False,
    reference: bool = False,
    process_peak: bool = False,
) -> Measurement:
    """Time and memory of ``steps`` meta-steps after ``warmup`` untimed ones, in this
    process. The warm-up matters: the first step pays one-time costs (lazy imports and
    initialisation, kernel selection; some 200 MiB of RSS on the CPU) that are not the
    solver's. Warm-up steps use one inner step (same kernels), so they stay cheap at 20."""
    from raybench.models import build_model
    from raybench.runtime import PeakMemory, device_name, resolve_device
    from raybench.solvers import make_solver
    from raybench.speed import MetaStep, configure_device, meta_step, outer_optimiser
    from raybench.tasks import TaskSampler, make_split

    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    split = make_split(config.split, data.characters, data.background)
    train = TaskSampler(
        data.images,
        split.train,
        ways=config.ways,
        shots=config.shots,
        query=config.query,
        rotations=config.rotations,
        device=device,
        dtype=dtype,
    )
    model = build_model(config.ways, config.hidden)
    solver = make_solver(config, model)
    # Warm-up with at most one inner step: the same kernels and shapes, a fraction of the time.
    warm = make_solver(replace(config, inner_steps=min(config.inner_steps, 1)), model)
    if reference:  # the per-task loop of raybench.reference in the solver's place
        from raybench.reference import LoopReference

        solver, warm = LoopReference(solver), LoopReference(warm)
    params = solver.init_params(config.seed, device, dtype, train)
    optimiser = outer_optimiser(params, config.outer_lr, device)
    configure_device(device)
    batch = solver.train_batch(
        train, config.meta_batch, torch.Generator(device=device).manual_seed(config.seed)
    )
    timed = meta_step(solver, params, batch, cuda_graph=config.cuda_graph, device=device)
    warming = meta_step(warm, params, batch, cuda_graph=False, device=device)
    if config.cuda_graph:  # the capture warms up on its own, with the real inner steps
        warmup = 0

    def step(meta: MetaStep = timed) -> None:
        grads, _ = meta(batch)
        for name, p in params.items():
            p.grad = grads[name]
        optimiser.step()

    memory = PeakMemory(device)
    kind = memory.kind
    times: list[float] = []
    peaks: list[float] = []
    try:
        for _ in range(warmup):
            step(warming)
        for _ in range(steps):
            memory.reset()  # syncs on CUDA; on the CPU the peak restarts from the current RSS
            before = _current_mb(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times.append(1000 * (time.perf_counter() - start))
            peaks.append(memory.read_mb() - before)
    except Exception as exc:  # out of memory at many inner steps is a result, not a crash
        return Measurement(
            device=device_name(device),
            threads=torch.get_num_threads(),
            error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
        )
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
        peak_memory_mb=statistics.median(peaks),
        memory_kind=kind,
        device=device_name(device),
        threads=torch.get_num_threads(),
        n_params=sum(p.numel() for p in params.values()),
    )


def measure_isolated(
    config: RunConfig,
    *,
    steps: int = 3,
    warmup: int = 1,
    threads: int | None = None,
    data_dir: Path | None = None,
    timeout_s: float | None = None,
    reference: bool = False,
    for_timing: bool = False,
) -> Measurement:
    """:func:`measure` in a fresh ``python -m raybench.studies.scaling`` process.
    ``for_timing`` keeps the allocator's defaults (see :func:`measure`'s ``process_peak``)."""
    command = [
        sys.executable,
        "-m",
        "raybench.studies.scaling",
        "--config",
        config.to_json(),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    ]
    if threads:
        command += ["--threads", str(threads)]
    if reference:
        command += ["--reference"]
    if for_timing:
        command += ["--for-timing"]
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


def _family(solver: str) -> str:
    from raybench.solvers import solver_class

    return solver_class(solver).family


def scaling_table(
    *,
    preset: str = "paper",
    overrides: Mapping[str, Any] | None = None,
    solvers: Sequence[str] | None = None,
    inner_steps: Sequence[int] = DEFAULT_INNER_STEPS,
    steps: int = 3,
    warmup: int = 1,
    threads: int | None = None,
    isolate: bool | None = None,
    data: Any = None,
    data_dir: Path | None = None,
    experiment: str = "",
    progress: Callable[[str], None] | None = None,
) -> pa.Table:
    """One row per (solver, inner steps); baselines once. ``isolate`` defaults to a fresh
    process per measurement on the CPU and to this process on CUDA (whose allocator
    statistics are exact)."""
    from raybench.runtime import device_name, git_commit, resolve_device
    from raybench.solvers import SOLVERS, make_config

    counts = sorted(dict.fromkeys(int(k) for k in inner_steps))
    if not counts or counts[0] < 0:
        raise RaybenchError(f"--inner-steps must be non-negative integers, got {inner_steps!r}")
    if steps < 1 or warmup < 0:
        raise RaybenchError(f"need --steps >= 1 and --warmup >= 0, got {steps} and {warmup}")
    overrides = dict(overrides or {})
    names = list(solvers or SOLVERS)
    plan: list[tuple[RunConfig, bool]] = []  # every config validated before measuring
    for name in names:
        matter = _family(name) != "baseline"
        for k in counts if matter else counts[:1]:
            plan.append((make_config(name, preset, {**overrides, "inner_steps": k}), matter))
    device = resolve_device(plan[0][0].device)
    if isolate is None:
        isolate = device.type == "cpu"
    if not isolate and data is None:
        from raybench.data import load_omniglot

        data = load_omniglot(data_dir)
    key = json.dumps(
        [[c.to_json() for c, _ in plan], steps, warmup, threads, isolate], sort_keys=True
    )
    study_id = f"{preset}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    notify = progress or (lambda _msg: None)
    now = datetime.now(timezone.utc)
    rows = []
    for i, (config, matter) in enumerate(plan, 1):
        notify(f"{config.solver}, inner steps {config.inner_steps} ({i}/{len(plan)})")
        if isolate:
            m = measure_isolated(
                config, steps=steps, warmup=warmup, threads=threads, data_dir=data_dir
            )
        else:
            saved = torch.get_num_threads()
            if threads:
                torch.set_num_threads(threads)
            try:
                m = measure(config, data, steps=steps, warmup=warmup)
            finally:
                torch.set_num_threads(saved)
        rows.append(
            {
                "schema_version": SCHEMA_VERSION,
                "study_id": study_id,
                "experiment": experiment,
                "solver": config.solver,
                "family": _family(config.solver),
                "inner_steps": config.inner_steps,
                "inner_steps_matter": matter,
                **{k: v for k, v in asdict(m).items() if k != "threads"},
                "device": m.device or device_name(device),
                "threads": m.threads or None,
                "isolated": isolate,
                "timed_steps": steps,
                "warmup_steps": warmup,
                **{
                    k: getattr(config, k)
                    for k in ("meta_batch", "ways", "shots", "query", "hidden", "inner_lr")
                },
                "dtype": config.dtype,
                "preset": config.preset,
                "config_fingerprint": config.fingerprint(),
                "config_json": config.to_json(),
                "torch_version": torch.__version__,
                "git_commit": git_commit(),
                "created_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=SCALING_SCHEMA)


@dataclass(frozen=True)
class Verdict:
    """Whether one solver's memory followed the report's expected shape."""

    solver: str
    family: str
    expected: str | None  # grows | flat | None (baselines: no claim)
    observed: str | None  # grows | flat | None (not enough measurements)
    first_steps: int | None
    last_steps: int | None
    memory_ratio: float | None
    time_ratio: float | None
    mb_per_inner_step: float | None
    text: str

    @property
    def as_expected(self) -> bool | None:
        if self.expected is None or self.observed is None:
            return None
        return self.expected == self.observed


# Settings that make measurements comparable: rows differing in one are shown apart.
SETTING_KEYS = (
    "device", "preset", "meta_batch", "ways", "shots", "query", "hidden", "dtype", "isolated",
    "threads",
)  # fmt: skip

_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def setting_groups(table: pa.Table) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Rows grouped by comparable settings, keeping the newest measurement of each
    (solver, inner steps) in a group (a rerun replaces, it does not average)."""
    newest: dict[tuple, dict[str, Any]] = {}
    for row in table.to_pylist():
        key = (*(row.get(k) for k in SETTING_KEYS), row.get("solver"), row.get("inner_steps"))
        old = newest.get(key)
        if old is None or (row.get("created_at") or _NEVER) >= (old.get("created_at") or _NEVER):
            newest[key] = row
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for key, row in newest.items():
        groups.setdefault(key[: len(SETTING_KEYS)], []).append(row)
    return [(dict(zip(SETTING_KEYS, key)), rows) for key, rows in groups.items()]


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def _r_squared(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """How much of the memory's variation a straight line in the inner steps explains."""
    slope = _slope(xs, ys)
    my = statistics.fmean(ys)
    total = sum((y - my) ** 2 for y in ys)
    if slope is None or not total:
        return None
    mx = statistics.fmean(xs)
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    return 1 - residual / total


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b > 0:
        return None
    return a / b


def verdict(solver: str, rows: Sequence[dict[str, Any]]) -> Verdict:
    """The trend of one solver's memory (and time) from its fewest to its most inner steps."""
    family = _family_of(solver, rows)
    expected = EXPECTED.get(family)
    good = sorted(
        (r for r in rows if r.get("peak_memory_mb") is not None and not r.get("error")),
        key=lambda r: r["inner_steps"],
    )
    if family == "baseline" or any(r.get("inner_steps_matter") is False for r in rows):
        return Verdict(
            solver, family, None, None, None, None, None, None, None,
            "pre-training step: inner steps only matter at evaluation (measured once)",
        )  # fmt: skip
    if len(good) < 2:
        errors = [r["error"] for r in rows if r.get("error")]
        text = f"failed: {errors[0]}" if errors else "one inner-step count: no trend to judge"
        return Verdict(solver, family, expected, None, None, None, None, None, None, text)
    first, last = good[0], good[-1]
    m0, m1 = first["peak_memory_mb"], last["peak_memory_mb"]
    growth = m1 - m0
    observed = "grows" if growth > max(GROWTH_FRACTION * max(m0, 0.0), NOISE_MB) else "flat"
    slope = _slope([r["inner_steps"] for r in good], [r["peak_memory_mb"] for r in good])
    mem_ratio = _ratio(m1, m0)
    time_ratio = _ratio(last.get("ms_per_step"), first.get("ms_per_step"))
    k0, k1 = first["inner_steps"], last["inner_steps"]
    size = f"{mem_ratio:.1f}x" if mem_ratio is not None else f"{growth:+.1f} MiB"
    text = (
        f"memory {observed} ({size} from {k0} to {k1} inner steps, {slope or 0:+.1f} MiB per step)"
    )
    fit = _r_squared([r["inner_steps"] for r in good], [r["peak_memory_mb"] for r in good])
    if observed == "grows" and len(good) >= 3 and fit is not None:
        text += f", straight-line fit R² {fit:.3f}"
    if time_ratio is not None:
        text += f", time {time_ratio:.1f}x"
    if expected is not None:
        text += ": as expected" if observed == expected else f": NOT as expected ({expected})"
    return Verdict(solver, family, expected, observed, k0, k1, mem_ratio, time_ratio, slope, text)


def _family_of(solver: str, rows: Sequence[dict[str, Any]]) -> str:
    for row in rows:
        if row.get("family"):
            return str(row["family"])
    return _family(solver)


def verdicts(rows: Sequence[dict[str, Any]]) -> list[Verdict]:
    """One verdict per solver of one settings group, in the report's family order."""
    by_solver: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_solver.setdefault(str(row["solver"]), []).append(row)

    def order(item: tuple[str, list[dict[str, Any]]]) -> tuple[int, str]:
        family = _family_of(item[0], item[1])
        rank = family_rank(family)
        return rank, item[0]

    return [verdict(solver, rows) for solver, rows in sorted(by_solver.items(), key=order)]


def _main(argv: Sequence[str] | None = None) -> None:
    """Child process: measure one config, print the measurement as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m raybench.studies.scaling")
    parser.add_argument("--config", required=True, help="RunConfig as JSON")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--reference", action="store_true", help="time the per-task loop")
    parser.add_argument("--for-timing", action="store_true", help="keep the allocator as is")
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
        isolated=True,
        reference=args.reference,
        process_peak=args.for_timing,
    )
    print(json.dumps(asdict(m)), flush=True)


if __name__ == "__main__":
    _main()
