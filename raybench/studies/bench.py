"""``raybench bench``: milliseconds per meta-step and memory of every solver, beside the
per-task loop that the report's listings describe, timed the same way in the same run.

A meta-step is what training does (``meta_grad`` on a meta-batch, then the outer Adam step)
on a fixed batch after warm-up, with the device synchronised around each timed step; the
figure is the median. The reference loops (``raybench.reference``) stand in for MAML and
FOMAML through the same code path, so the ratio compares implementations, not harnesses.
On the CPU each measurement runs in a fresh process (comparable memory, no interference
between solvers); on a GPU all run in this one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import torch
from rich.table import Table

from raybench.config import RunConfig
from raybench.runtime import git_commit, library_versions
from raybench.studies.scaling import Measurement, measure, measure_isolated

SCHEMA_VERSION = 1
REFERENCES = ("maml", "fomaml")


def reference_for(family: str) -> str:
    """The loop a solver is compared with: exact second order for solvers that use
    curvature, first order for the rest."""
    return "fomaml" if family in ("first-order", "baseline") else "maml"


def bench_table(
    configs: Sequence[RunConfig],
    data: Any,
    *,
    steps: int,
    warmup: int,
    with_reference: bool = True,
    threads: int | None = None,
    experiment: str = "bench",
) -> pa.Table:
    """One row per solver, then one per reference loop, with each solver's speed-up over
    its loop when the loop was measured."""
    from raybench.runtime import resolve_device
    from raybench.solvers import solver_class

    cases: list[tuple[RunConfig, bool]] = [(c, False) for c in configs]
    if with_reference:
        base = configs[0]
        for name in REFERENCES:
            cases.append((_as_solver(base, name), True))
    on_gpu = resolve_device(configs[0].device).type == "cuda"
    rows: list[dict[str, Any]] = []
    for config, is_loop in cases:
        if on_gpu:
            m = measure(config, data, steps=steps, warmup=warmup, reference=is_loop)
        else:
            m = measure_isolated(
                config,
                steps=steps,
                warmup=warmup,
                threads=threads,
                reference=is_loop,
                for_timing=True,
            )
        rows.append(_row(config, m, is_loop, solver_class(config.solver).family, experiment))
    loops = {r["solver"]: r["ms_per_step"] for r in rows if r["implementation"] == "reference loop"}
    for row in rows:
        if row["implementation"] == "vectorised":
            row["reference"] = f"{reference_for(row['family'])} loop"
            loop = loops.get(reference_for(row["family"]))
            if loop and row["ms_per_step"]:
                row["speedup_vs_loop"] = loop / row["ms_per_step"]
    return pa.Table.from_pylist(rows, schema=BENCH_SCHEMA)


def _as_solver(config: RunConfig, solver: str) -> RunConfig:
    from raybench.configfile import config_from_dict

    data = config.to_dict()
    data.update(solver=solver, solver_options={}, cuda_graph=False)  # the loop stays eager
    return config_from_dict(data)


def _row(
    config: RunConfig, m: Measurement, is_loop: bool, family: str, experiment: str
) -> dict[str, Any]:
    ms = m.ms_per_step
    return {
        "schema_version": SCHEMA_VERSION,
        "bench_id": hashlib.sha1(config.to_json().encode()).hexdigest()[:10],
        "experiment": experiment,
        "solver": config.solver,
        "family": family,
        "implementation": "reference loop" if is_loop else "vectorised",
        "reference": None,
        "ms_per_step": ms,
        "ms_min": m.ms_min,
        "speedup_vs_loop": None,
        "implied_run_s": None if ms is None else ms * config.meta_steps / 1000,
        "meta_steps": config.meta_steps,
        "peak_memory_mb": m.peak_memory_mb,
        "memory_kind": m.memory_kind,
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
        pa.field("speedup_vs_loop", pa.float64()),
        pa.field("implied_run_s", pa.float64()),
        pa.field("meta_steps", pa.int64()),
        pa.field("peak_memory_mb", pa.float64()),
        pa.field("memory_kind", pa.string()),
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


def bench_rich(table: pa.Table) -> Table:
    from raybench.report.records import format_duration, format_memory

    rows = table.to_pylist()
    first = rows[0] if rows else {}
    title = (
        f"raybench bench: {first.get('device', '?')}, torch {first.get('torch_version', '?')}, "
        f"preset {first.get('preset', '?')} ({first.get('ways')}-way {first.get('shots')}-shot, "
        f"{first.get('query')} query/class, {first.get('meta_batch')} tasks, "
        f"{first.get('inner_steps')} inner steps, {first.get('dtype')})"
    )
    out = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in (
        ("Solver", "left"),
        ("Family", "left"),
        ("Implementation", "left"),
        ("ms/step (median)", "right"),
        ("min", "right"),
        ("Peak mem.", "right"),
        (f"{first.get('meta_steps', '?')} steps", "right"),
        ("x its loop", "right"),
    ):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, row in enumerate(rows):
        ms = row["ms_per_step"]
        speed = row["speedup_vs_loop"]
        out.add_row(
            row["solver"],
            row["family"],
            row["implementation"],
            "—" if ms is None else f"{ms:.1f}",
            "—" if row["ms_min"] is None else f"{row['ms_min']:.1f}",
            format_memory(row["peak_memory_mb"]),
            format_duration(row["implied_run_s"]),
            "—" if speed is None else f"{speed:.1f}x vs {row['reference']}",
            end_section=i + 1 < len(rows)
            and rows[i + 1]["implementation"] != row["implementation"],
        )
        if row["error"]:
            out.add_row("", "", f"[red]{row['error']}[/]", *[""] * 5)
    out.caption = (
        f"{first.get('memory_kind', '')}; threads {first.get('threads')}; "
        "median of timed steps after warm-up, device synchronised around each"
    )
    out.caption_justify = "left"
    return out


def default_steps(device: torch.device) -> tuple[int, int]:
    """(timed, warm-up) steps: enough to be stable on a GPU, affordable on a CPU."""
    return (20, 5) if device.type == "cuda" else (2, 1)
