"""The report as Rich tables: one table per setting, best values in bold green.

The content comes from :mod:`raybench.report.records`; this module only decides how it
looks in a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from rich.table import Table

from raybench.report import references as refs
from raybench.report.records import (
    MISSING,
    NOTES,
    config_key,
    format_duration,
    format_memory,
    run_views,
    setting_captions,
    setting_key,
    setting_label,
)
from raybench.report.stability import finite as _num

BEST = "bold green"


def _best_values(records: Sequence[Mapping[str, Any]], spec: Mapping[str, bool]) -> dict:
    """Per column, the best value (highest or lowest) among completed runs, or summary rows
    with a completed run; nothing to highlight when there is only one row."""
    out: dict[str, float | None] = dict.fromkeys(spec)
    if len(records) < 2:
        return out

    def eligible(r: Mapping[str, Any]) -> bool:
        return r.get("status") == "completed" if "status" in r else bool(r.get("completed"))

    for key, highest in spec.items():
        values = [v for r in records if eligible(r) and (v := _num(r.get(key))) is not None]
        if values:
            out[key] = max(values) if highest else min(values)
    return out


SUMMARY_BEST = {
    "test_acc": True,
    "val_acc": True,
    "test_std": False,
    "roughness": False,
    "steps_90": False,
    "steps_95": False,
    "wall_time_s": False,
    "ms_per_step": False,
    "peak_memory_mb": False,
}


def _mark(text: str, value: Any, best: float | None) -> str:
    good = best is not None and _num(value) is not None and _num(value) == best
    return f"[{BEST}]{text}[/]" if good else text


def _acc_text(acc: Any, ci: Any) -> str:
    if acc is None:
        return MISSING
    return f"{acc:.2f} ± {ci:.2f}" if ci is not None else f"{acc:.2f}"


def _fixed(value: Any, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def reference_lines(row: Mapping[str, Any], acc: float | None, ci: float | None) -> str:
    """Every reference of a row, one line each: ``82.7 T2: within``; a reference whose
    protocol differs is marked ``≠`` and dimmed, without a verdict (context, not a
    target); ``n/c, CI ±9.0 wider than ±5``: not comparable, the interval is too wide."""
    lines = []
    for m in refs.references_for(row):
        ref = m.reference
        pm = f"±{ref.pm:g}" if ref.pm is not None else ""
        text = f"{ref.value:g}{pm} {ref.short or ref.source}"
        if not m.same_protocol:  # ≠ says it all: context, no verdict
            lines.append(f"[dim]≠ {text}[/]")
            continue
        verdict = refs.match_verdict(m, acc, ci) or MISSING
        lines.append(f"{text}: {verdict.replace('not comparable: interval', 'n/c, CI')}")
    return "\n".join(lines) or MISSING


def _solver_cell(record: Mapping[str, Any]) -> str:
    """Solver (and its config's source unless a preset), family, own options: one cell, so
    the wide table fits a 160-column log."""
    source = record.get("source")
    head = str(record["solver"]) + (f" ({source})" if source not in (None, "preset") else "")
    lines = [head, f"[dim]{record.get('family') or MISSING}[/]"]
    for key in ("options", "differs"):
        if record.get(key) is not None:
            lines.append(f"[dim]{record[key]}[/]")
    assumptions = record.get("assumptions")  # implicit solvers: do their premises hold?
    if assumptions is not None and assumptions.startswith("violated: "):
        failed = assumptions.removeprefix("violated: ").split(", ")
        lines += ["[red]assumptions violated:[/]", *(f"[red] {f}[/]" for f in failed)]
    elif assumptions is not None:
        lines.append(f"[green]assumptions {assumptions}[/]")
    return "\n".join(lines)


# Marks a row not significantly worse than the best of its setting (paired, Holm).
TIED = "★"


def versus_best_text(record: Mapping[str, Any]) -> str:
    """``best ★``, ``-0.42 ± 0.90 ★`` (not significantly worse) or ``-20.10 ± 3.00``."""
    verdict = record.get("vs_best_verdict")
    if verdict is None:
        return MISSING
    if verdict == "best":
        return f"[{BEST}]best {TIED}[/]"
    text = f"{record['vs_best']:+.2f} ± {record['vs_best_ci95']:.2f}"
    return f"{text} [{BEST}]{TIED}[/]" if verdict == "tied" else text


SUMMARY_COLUMNS = (
    ("Solver", "left"),
    ("Runs", "right"),
    ("Test acc. % (95% CI)", "right"),
    ("Δ best", "right"),
    ("Std", "right"),
    ("Val. %", "right"),
    ("Rough.", "right"),
    ("Steps 90/95%", "right"),
    ("Wall", "right"),
    ("ms/step", "right"),
    ("Mem.", "right"),
    ("Reference %", "left"),
)


def summary_tables(
    records: Sequence[Mapping[str, Any]],
    runs: pa.Table,
    title: str = "raybench",
) -> list[Table]:
    """The aggregated records as Rich tables, one per setting, best values per setting in
    bold green; the notes under the last."""
    captions = setting_captions(runs)
    first_rows: dict[tuple[str, str], dict] = {}
    for row in runs.to_pylist():
        first_rows.setdefault((setting_label(setting_key(row)), config_key(row)), row)
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_setting.setdefault(record["setting"], []).append(record)
    tables = []
    for label, rows in by_setting.items():
        out = Table(title=f"{title} — {label}", title_justify="left", header_style="bold")
        for name, justify in SUMMARY_COLUMNS:
            # the reference lines wrap, everything else keeps its width: names never squeezed
            wrap = name == "Reference %"
            out.add_column(name, justify=justify, no_wrap=not wrap, max_width=40 if wrap else None)  # type: ignore[arg-type]
        best = _best_values(rows, SUMMARY_BEST)
        for r in rows:
            raw = first_rows.get((label, r["config"]), {})
            diverged = f"[red]{r['diverged']}[/]" if r["diverged"] else "0"
            failed = f"[red]{r['failed']}[/]" if r["failed"] else "0"
            steps = f"{_fixed(r['steps_90'], 0)}/{_fixed(r['steps_95'], 0)}"
            if r["steps_90"] is None and r["steps_95"] is None:
                steps = MISSING
            out.add_row(
                _solver_cell(r),
                f"{r['completed']}/{diverged}/{failed}",
                _mark(_acc_text(r["test_acc"], r["test_ci95"]), r["test_acc"], best["test_acc"]),
                versus_best_text(r),
                _mark(_fixed(r["test_std"], 2), r["test_std"], best["test_std"]),
                _mark(_fixed(r["val_acc"], 2), r["val_acc"], best["val_acc"]),
                _mark(_fixed(r["roughness"], 2), r["roughness"], best["roughness"]),
                _mark(steps, r["steps_90"], best["steps_90"]),
                _mark(format_duration(r["wall_time_s"]), r["wall_time_s"], best["wall_time_s"]),
                _mark(_fixed(r["ms_per_step"], 1), r["ms_per_step"], best["ms_per_step"]),
                _mark(
                    format_memory(r["peak_memory_mb"]), r["peak_memory_mb"], best["peak_memory_mb"]
                ),
                reference_lines(raw, r["test_acc"], r["test_ci95"]),
            )
        out.caption = captions.get(label, "")
        out.caption_justify = "left"
        tables.append(out)
    if tables:
        tables[-1].caption = "\n".join([tables[-1].caption or "", *NOTES]).strip()
    return tables


def runs_table(table: pa.Table, title: str = "raybench", curves: pa.Table | None = None) -> Table:
    """One row per run: solver, family, test accuracy with its 95% interval, final
    validation accuracy, the run's stability measures, wall time, ms per meta-step, peak
    memory, status (with the meta-steps done unless completed); the best value of each
    measure among completed runs of a setting in bold green. Settings are sections, named on
    their first row."""
    views = [v for _, v in run_views(table, curves)]
    out = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in (
        ("Setting", "left"),
        ("Solver", "left"),
        ("Family", "left"),
        ("Options", "left"),
        ("Seed", "right"),
        ("Test acc. % (95% CI)", "right"),
        ("Val. %", "right"),
        ("Rough.", "right"),
        ("Steps 90/95%", "right"),
        ("Wall", "right"),
        ("ms/step", "right"),
        ("Mem.", "right"),
        ("Status", "left"),
    ):
        wrap = name in ("Setting", "Options", "Status")
        out.add_column(name, justify=justify, no_wrap=not wrap)  # type: ignore[arg-type]
    spec = {
        "test_acc": True,
        "val_acc": True,
        "wall_time_s": False,
        "ms_per_step": False,
        "peak_memory_mb": False,
    }
    best_by_setting: dict[Any, dict] = {}
    for key in {v["setting_key"] for v in views}:
        best_by_setting[key] = _best_values([v for v in views if v["setting_key"] == key], spec)
    previous = None
    for v in views:
        if previous is not None and v["setting_key"] != previous:
            out.add_section()
        label = setting_label(v["setting_key"]) if v["setting_key"] != previous else ""
        previous = v["setting_key"]
        best = best_by_setting[v["setting_key"]]
        acc, ci = v["test_acc"], v["test_ci95"]
        test = MISSING if acc is None else f"{acc:.2f} ± {ci or 0:.2f}"
        val = v["val_acc"]
        status = v["status"] or "?"
        stab_steps = MISSING if v["steps_90"] is None else f"{v['steps_90']}/{v['steps_95']}"
        total = v["meta_steps"]
        if status != "completed":
            done = f"{v['steps_done']}/{total}" if total else str(v["steps_done"])
            status = f"[red]{status}[/] at {done}"
        source = v["source"]
        solver = str(v["solver"]) + (f" ({source})" if source not in (None, "preset") else "")
        out.add_row(
            label,
            solver,
            str(v["family"] or MISSING),
            v["options"] or MISSING,
            str(v["seed"] if v["seed"] is not None else MISSING),
            _mark(test, acc, best["test_acc"]),
            _mark(MISSING if val is None else f"{val:.2f}", val, best["val_acc"]),
            MISSING if v["roughness"] is None else f"{v['roughness']:.2f}",
            stab_steps,
            _mark(format_duration(v["wall_time_s"]), v["wall_time_s"], best["wall_time_s"]),
            _mark(_fixed(v["ms_per_step"], 1), v["ms_per_step"], best["ms_per_step"]),
            _mark(format_memory(v["peak_memory_mb"]), v["peak_memory_mb"], best["peak_memory_mb"]),
            status,
        )
    captions = setting_captions(table)
    out.caption = "\n".join(f"{label}: {line}" for label, line in captions.items())
    out.caption_justify = "left"
    return out
