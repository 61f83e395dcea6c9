"""Memory and time of one meta-step as the number of inner steps grows.

The report's claim to check: explicit MAML and the penalty method keep the graph of every
inner step, so their memory grows linearly with the inner steps; first-order solvers
(FOMAML, Reptile) and implicit ones (iMAML, Neumann) never differentiate through the inner
loop, so theirs stays flat. (Time should grow for every solver, as each runs its inner
loop; the study reports what it measures. A verdict follows one stated rule, ``TREND_RULE``,
and needs three inner-step counts.)

A meta-step is measured as ``raybench.measurements.measure`` describes, at the preset's settings
with ``inner_steps`` changed; on the CPU each (solver, inner steps) runs in its own fresh
process whose allocator returns freed memory at once, so that the step's own memory growth
is visible. (That costs page faults, which the CPU times include: compare them between
solvers and inner steps, not with ``raybench run``.)

The fine-tuning baselines' step is a pre-training step: the inner steps only matter at
evaluation, so they are measured once and marked ``inner_steps_matter = false``.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from raybench.config import RunConfig
from raybench.errors import ParameterError
from raybench.measurements.defaults import DEFAULT_INNER_STEPS, DEFAULT_WARMUP
from raybench.solver_catalog import family_rank

SCHEMA_VERSION = 1

# The report's expected shape of memory against inner steps, by solver family.
EXPECTED = {"second-order": "grows", "penalty": "grows", "first-order": "flat", "implicit": "flat"}


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
        pa.field("ms_max", pa.float64()),
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
    warmup: int = DEFAULT_WARMUP,
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
    import torch

    from raybench.measurements.measure import measure, measure_isolated
    from raybench.runtime import device_name, git_commit, resolve_device
    from raybench.solvers import SOLVERS, make_config

    counts = sorted(dict.fromkeys(int(k) for k in inner_steps))
    if not counts or counts[0] < 0:
        raise ParameterError(
            "{inner_steps} must be non-negative integers, got {given!r}", given=inner_steps
        )
    if steps < 1 or warmup < 0:
        raise ParameterError(
            "need {timed_steps} >= 1 and {warmup} >= 0, got {steps} and {given}",
            steps=steps,
            given=warmup,
        )
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
                **{
                    k: v
                    for k, v in asdict(m).items()
                    if k not in ("threads", "timed_steps", "warmup_steps")
                },
                "device": m.device or device_name(device),
                "threads": m.threads or None,
                "isolated": isolate,
                "timed_steps": m.timed_steps or steps,
                "warmup_steps": m.warmup_steps if m.timed_steps else warmup,
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
class Trend:
    """A least-squares line through (inner steps, value) and what it says, by
    :data:`TREND_RULE`: ``observed`` is None when there are too few points to say."""

    observed: str | None  # grows | flat | shrinks | None
    points: int  # distinct inner-step counts measured
    slope: float | None = None  # per inner step
    change: float | None = None  # slope x (last - first inner steps): the line's rise
    start: float | None = None  # the line's value at the fewest inner steps
    band: float | None = None  # |change| at most this: flat


MIN_POINTS = 3  # inner-step counts a trend needs: two points always make a line
TREND_FRACTION = 0.1  # a trend must change the line by more than this fraction of its start
MEMORY_FLOOR_MB = 2.0  # ...and by more than this (the jitter of CPU RSS readings)
TIME_FLOOR_MS = 1.0
TREND_RULE = (
    f"trend rule: a least-squares line through every inner-step count measured (at least "
    f"{MIN_POINTS}, else 'too few points'); it 'grows' or 'shrinks' when the line rises or "
    f"falls over the measured range by more than {TREND_FRACTION:.0%} of its value at the "
    f"fewest steps and more than {MEMORY_FLOOR_MB:g} MiB ({TIME_FLOOR_MS:g} ms for time); "
    "'flat' otherwise"
)


def trend(xs: Sequence[float], ys: Sequence[float], floor: float) -> Trend:
    """The trend of ``ys`` against ``xs`` by :data:`TREND_RULE` (repeated x values are
    averaged first, so each inner-step count weighs the same)."""
    by_x: dict[float, list[float]] = {}
    for x, y in zip(xs, ys):
        by_x.setdefault(float(x), []).append(float(y))
    points = sorted((x, statistics.fmean(v)) for x, v in by_x.items())
    if len(points) < MIN_POINTS:
        return Trend(None, len(points))
    px, py = [x for x, _ in points], [y for _, y in points]
    slope = _slope(px, py) or 0.0
    start = statistics.fmean(py) + slope * (px[0] - statistics.fmean(px))
    change = slope * (px[-1] - px[0])
    band = max(TREND_FRACTION * max(start, 0.0), floor)
    observed = "grows" if change > band else "shrinks" if change < -band else "flat"
    return Trend(observed, len(points), slope, change, start, band)


@dataclass(frozen=True)
class Verdict:
    """Whether one solver's memory followed the report's expected shape, and how its time
    went, each judged by :data:`TREND_RULE`."""

    solver: str
    family: str
    expected: str | None  # grows | flat | None (baselines: no claim)
    observed: str | None  # grows | flat | shrinks | None (too few points, or failed)
    first_steps: int | None
    last_steps: int | None
    memory_ratio: float | None  # measured, most over fewest inner steps
    time_ratio: float | None
    mb_per_inner_step: float | None  # the fitted line's slope, the number the verdict uses
    text: str
    time_observed: str | None = None
    ms_per_inner_step: float | None = None
    points: int = 0

    @property
    def as_expected(self) -> bool | None:
        if self.expected is None or self.observed is None:
            return None
        return self.expected == self.observed


def _describe(name: str, unit: str, t: Trend, k0: int, k1: int, ratio: float | None) -> str:
    """``memory grows: +52.6 MiB per inner step (1 to 20: +1000 MiB, 10.5x)`` or ``memory
    flat: +0.02 MiB per inner step (1 to 20: +0.4 MiB, within ±2 MiB)``: the verdict and
    the numbers it was drawn from, never one without the other."""
    assert t.slope is not None and t.change is not None and t.band is not None
    times = f", {ratio:.1f}x" if ratio is not None and t.observed != "flat" else ""
    within = f", within ±{t.band:.3g} {unit}" if t.observed == "flat" else ""
    return (
        f"{name} {t.observed}: {t.slope:+.3g} {unit} per inner step "
        f"({k0} to {k1}: {t.change:+.3g} {unit}{times}{within})"
    )


def verdict(solver: str, rows: Sequence[dict[str, Any]]) -> Verdict:
    """One solver's memory and time trends over its inner-step counts (:data:`TREND_RULE`),
    and whether memory took the shape the report expects of its family."""
    family = _family_of(solver, rows)
    expected = EXPECTED.get(family)
    if family == "baseline" or any(r.get("inner_steps_matter") is False for r in rows):
        return Verdict(
            solver, family, None, None, None, None, None, None, None,
            "pre-training step: inner steps only matter at evaluation (measured once)",
        )  # fmt: skip
    good = sorted(
        (r for r in rows if r.get("peak_memory_mb") is not None and not r.get("error")),
        key=lambda r: r["inner_steps"],
    )
    ks = [r["inner_steps"] for r in good]
    memory = trend(ks, [r["peak_memory_mb"] for r in good], MEMORY_FLOOR_MB)
    if memory.observed is None:
        errors = [r["error"] for r in rows if r.get("error")]
        counts = sorted(set(ks))
        text = (
            f"too few points: {len(counts)} inner-step count(s) measured"
            + (f" ({', '.join(map(str, counts))})" if counts else "")
            + f"; a trend needs {MIN_POINTS}"
            + (f"; failed: {errors[0]}" if errors else "")
        )
        return Verdict(solver, family, expected, None, None, None, None, None, None, text,
                       points=memory.points)  # fmt: skip
    first, last = good[0], good[-1]
    k0, k1 = first["inner_steps"], last["inner_steps"]
    mem_ratio = _ratio(last["peak_memory_mb"], first["peak_memory_mb"])
    timed = [r for r in good if r.get("ms_per_step") is not None]
    time = trend([r["inner_steps"] for r in timed], [r["ms_per_step"] for r in timed],
                 TIME_FLOOR_MS)  # fmt: skip
    time_ratio = _ratio(timed[-1]["ms_per_step"], timed[0]["ms_per_step"]) if timed else None
    text = _describe("memory", "MiB", memory, k0, k1, mem_ratio)
    if expected is not None:
        text += (
            f", as expected for {family}"
            if memory.observed == expected
            else f", NOT as expected ({expected} for {family})"
        )
    if time.observed is not None:
        text += "; " + _describe("time", "ms", time, k0, k1, time_ratio)
    return Verdict(
        solver, family, expected, memory.observed, k0, k1, mem_ratio, time_ratio,
        memory.slope, text, time.observed, time.slope, memory.points,
    )  # fmt: skip


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


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b > 0:
        return None
    return a / b


# What each ``memory_kind`` measures, in words (titles and captions show these, not keys).
MEMORY_KINDS = {
    "cuda_max_allocated_delta": "CUDA memory the step allocates (peak minus before)",
    "cuda_max_allocated": "CUDA memory allocated, peak",
    "cpu_peak_rss_delta": "growth of resident memory during the step (CPU, fresh process)",
    "cpu_peak_rss_delta_in_process": (
        "growth of resident memory during the step (CPU, measured in one process: later "
        "measurements reuse memory, so growth is understated)"
    ),
    "cpu_peak_rss_process_delta": (
        "growth of the process's peak resident memory (CPU, peak not resettable here)"
    ),
    "cpu_process_peak_rss": "peak resident memory of the whole process (CPU, fresh process)",
    "cpu_peak_rss": "peak resident memory (CPU)",
    "cpu_peak_rss_process": "peak resident memory of the whole process so far (CPU)",
}


def memory_kind_name(kind: str | None) -> str:
    """A stored ``memory_kind`` in words."""
    if not kind:
        return "memory"
    return MEMORY_KINDS.get(kind, kind.replace("_", " "))


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
