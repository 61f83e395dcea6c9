"""Rich tables built from the Parquet store alone, in the spirit of the report's Table 2."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from rich.table import Table

# Table 2's order: baselines, then first-order up to exact second-order.
FAMILY_ORDER = ("baseline", "first-order", "implicit", "penalty", "second-order")

BEST = "bold green"


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_memory(mb: float | None) -> str:
    if mb is None:
        return "—"
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def solver_options(row: dict[str, Any]) -> str:
    """A solver's own knobs, from the stored config: ``lam=2 cg_steps=5``."""
    try:
        options = json.loads(row.get("config_json") or "{}").get("solver_options", {})
    except ValueError:
        return "?"
    return (
        " ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in options.items()
            if v is not None
        )
        or "—"
    )


def _sort_key(row: dict[str, Any]) -> tuple:
    family = row.get("family") or ""
    rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
    return (rank, row.get("solver") or "", row.get("seed") or 0, row.get("run_id") or "")


def _best(rows: Sequence[dict[str, Any]], key: str, highest: bool) -> float | None:
    values = [
        v for r in rows if r.get("status") == "completed" and (v := _num(r.get(key))) is not None
    ]
    if not values:
        return None
    return max(values) if highest else min(values)


def runs_table(table: pa.Table, title: str = "raybench") -> Table:
    """One row per run: solver, family, test accuracy with its 95% interval, final
    validation accuracy, wall time, ms per meta-step, peak memory, status; the best value
    of each measure among completed runs in bold green."""
    rows = sorted(table.to_pylist(), key=_sort_key)
    out = Table(title=title, title_justify="left", header_style="bold")
    out.add_column("Solver")
    out.add_column("Family")
    out.add_column("Options")
    out.add_column("Seed", justify="right")
    out.add_column("Test acc. % (95% CI)", justify="right")
    out.add_column("Val. acc. %", justify="right")
    out.add_column("Wall time", justify="right")
    out.add_column("ms/step", justify="right")
    out.add_column("Peak mem.", justify="right")
    out.add_column("Steps", justify="right")
    out.add_column("Config")
    out.add_column("Status")

    best = {
        "test_acc_mean": _best(rows, "test_acc_mean", True),
        "final_val_acc": _best(rows, "final_val_acc", True),
        "wall_time_s": _best(rows, "wall_time_s", False),
        "ms_per_step": _best(rows, "ms_per_step", False),
        "peak_memory_mb": _best(rows, "peak_memory_mb", False),
    }

    def cell(row: dict[str, Any], key: str, text: str) -> str:
        value = _num(row.get(key))
        good = value is not None and value == best[key] and row.get("status") == "completed"
        return f"[{BEST}]{text}[/]" if good and len(rows) > 1 else text

    for row in rows:
        acc, ci = _num(row.get("test_acc_mean")), _num(row.get("test_acc_ci95"))
        test = "—" if acc is None else f"{100 * acc:.2f} ± {100 * (ci or 0):.2f}"
        val = _num(row.get("final_val_acc"))
        ms = _num(row.get("ms_per_step"))
        status = row.get("status") or "?"
        status_text = status if status == "completed" else f"[red]{status}[/]"
        steps = row.get("steps_done")
        total = row.get("meta_steps")
        out.add_row(
            str(row.get("solver")),
            str(row.get("family") or "—"),
            solver_options(row),
            str(row.get("seed", "—")),
            cell(row, "test_acc_mean", test),
            cell(row, "final_val_acc", "—" if val is None else f"{100 * val:.2f}"),
            cell(row, "wall_time_s", format_duration(_num(row.get("wall_time_s")))),
            cell(row, "ms_per_step", "—" if ms is None else f"{ms:.1f}"),
            cell(row, "peak_memory_mb", format_memory(_num(row.get("peak_memory_mb")))),
            f"{steps}/{total}" if total else str(steps),
            str(row.get("source") or "—"),
            status_text,
        )
    out.caption = _caption(rows)
    out.caption_justify = "left"
    return out


def _caption(rows: Sequence[dict[str, Any]]) -> str:
    """The protocol choices that change published numbers, shared by the runs or not."""

    def values(key: str) -> str:
        seen = sorted({str(r.get(key)) for r in rows if r.get(key) is not None})
        return "/".join(seen) if seen else "?"

    setting = ", ".join(
        [
            f"{values('ways')}-way {values('shots')}-shot, {values('query')} query/class",
            f"split {values('split')}",
            f"bn {values('bn')}",
            f"rotations {values('rotations')}",
            f"preset {values('preset')}",
            f"test tasks {values('test_tasks_n')}",
        ]
    )
    devices = values("device")
    return f"{setting}\ndevice: {devices}"
