"""Rich tables for the fidelity and scaling studies, built from their Parquet tables alone."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from raybench.assumption_checks import VIOLATIONS, solver_assumptions, violations
from raybench.measurements.scaling import TREND_RULE, memory_kind_name, setting_groups, verdicts
from raybench.report.records import format_memory
from raybench.solver_catalog import family_rank

PSEUDO_NOTE = (
    "† pseudo-gradient theta - phi: not a gradient of the MAML objective; its norm follows "
    "inner_lr x inner steps, so only its cosine is comparable"
)


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _other_options(row: dict[str, Any]) -> str:
    """The solver's options other than the swept knob: the setting the sweep holds fixed."""
    try:
        options = json.loads(row.get("options_json") or "{}")
    except ValueError:
        return "?"
    shown = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in options.items()
        if k != row.get("knob") and v is not None
    ]
    return " ".join(shown) or ""


EXACT_NOTE = (
    "implicit solvers: 'vs own exact' is the relative error of the solver's answer against "
    "the exact solution of its own linear system at its own adapted weights (its "
    "approximation error); 'exact vs MAML' that exact solution against MAML (the mismatch "
    "between the implicit and the unrolled objective); assumptions as measured on the same "
    "tasks (see the README)"
)


def assumption_notes(row: dict[str, Any]) -> str:
    """``hold``, or the failed checks; and where CG met negative curvature."""
    failed = violations(row, solver_assumptions(row.get("solver")))
    if failed is None:
        return ""
    parts = [", ".join(VIOLATIONS[c] for c in failed) if failed else "hold"]
    stopped, tasks = row.get("diag_negative_curvature"), row.get("diag_tasks")
    if stopped:
        first, last = row.get("negative_curvature_first"), row.get("negative_curvature_last")
        at = f"{first}" if first == last else f"{first}-{last}"
        parts.append(f"CG met negative curvature on {stopped}/{tasks} tasks at iteration {at}")
    return "; ".join(parts)


def _memory(mb: float | None) -> str:
    """Small figures (tiny test models, CPU RSS growth) keep a decimal."""
    if mb is not None and abs(mb) < 100:
        return f"{mb:.1f} MiB"
    return format_memory(mb)


def fidelity_tables(table: pa.Table) -> list[Table]:
    """One table per (point, comparison settings): each solver and knob value against the
    exact MAML meta-gradient on the same tasks; the initialisation first."""
    studies: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        studies.setdefault(str(row.get("study_id")), []).append(row)

    def study_order(rows: list[dict[str, Any]]) -> tuple:
        first = rows[0]
        return (first.get("point_kind") != "init", str(first.get("point")), first.get("created_at"))

    out = []
    for rows in sorted(studies.values(), key=study_order):
        first = rows[0]
        title = (
            f"Meta-gradient fidelity vs MAML at {first.get('point')} "
            f"({first.get('point_source')}): "
            f"{first.get('tasks')} validation tasks, {first.get('inner_steps')} inner steps, "
            f"inner lr {first.get('inner_lr'):g}, {first.get('dtype')}"
        )
        t = Table(title=title, title_justify="left", header_style="bold")
        t.add_column("Solver")
        t.add_column("Family")
        t.add_column("Knob")
        t.add_column("Value", justify="right")
        t.add_column("Cosine", justify="right")
        t.add_column("Rel. error", justify="right")
        t.add_column("Norm ratio", justify="right")
        t.add_column("ms", justify="right")
        t.add_column("Vs own exact", justify="right")
        t.add_column("Exact vs MAML", justify="right")
        t.add_column("Other options")
        t.add_column("Assumptions")
        rows = sorted(
            rows,
            key=lambda r: (
                family_rank(r.get("family")),
                str(r.get("solver")),
                _num(r.get("knob_value")) or 0.0,
            ),
        )
        pseudo = implicit = False
        for row in rows:
            name = str(row.get("solver"))
            if row.get("pseudo_gradient"):
                name += " †"
                pseudo = True
            t.add_row(
                escape(name),
                escape(str(row.get("family") or "—")),
                escape(str(row.get("knob") or "—")),
                _fmt(_num(row.get("knob_value")), "g"),
                _fmt(_num(row.get("cosine")), ".6f"),
                _fmt(_num(row.get("rel_error")), ".3e"),
                _fmt(_num(row.get("norm_ratio")), ".4f"),
                _fmt(_num(row.get("time_ms")), ".0f"),
                _fmt(_num(row.get("vs_exact_rel_error")), ".3e"),
                _fmt(_num(row.get("exact_rel_error")), ".3e"),
                _other_options(row),
                assumption_notes(row),
            )
            implicit = implicit or row.get("exact_method") is not None
        caption = [
            "reference: explicit MAML, ||g_maml|| = "
            f"{_fmt(_num(first.get('maml_grad_norm')), '.4g')}; "
            f"{first.get('ways')}-way {first.get('shots')}-shot, {first.get('query')} query/class, "
            f"hidden {first.get('hidden')}, preset {first.get('preset')}; "
            f"device: {first.get('device')}"
        ]
        if pseudo:
            caption.append(PSEUDO_NOTE)
        if implicit:
            methods = sorted({str(r["exact_method"]) for r in rows if r.get("exact_method")})
            worst = max((_num(r.get("exact_residual")) or 0.0) for r in rows)
            caption.append(
                f"{EXACT_NOTE}; exact solutions by {'/'.join(methods)}, relative residual "
                f"at most {worst:.1e}"
            )
        t.caption = escape("\n".join(caption))
        t.caption_justify = "left"
        out.append(t)
    return out


def scaling_renderables(table: pa.Table) -> list[RenderableType]:
    """Per group of comparable settings: time and memory per meta-step, solvers as rows and
    inner-step counts as columns, then one verdict line per solver on the expected shape."""
    out: list[RenderableType] = []
    for settings, rows in setting_groups(table):
        counts = sorted({r["inner_steps"] for r in rows if r.get("inner_steps_matter")}) or sorted(
            {r["inner_steps"] for r in rows}
        )
        by_solver: dict[str, dict[int, dict[str, Any]]] = {}
        families: dict[str, str] = {}
        for row in rows:
            by_solver.setdefault(str(row["solver"]), {})[row["inner_steps"]] = row
            families[str(row["solver"])] = str(row.get("family") or "")
        order = sorted(by_solver, key=lambda s: (family_rank(families[s]), s))
        kinds = sorted(
            {memory_kind_name(r.get("memory_kind")) for r in rows if r.get("memory_kind")}
        )
        where = (
            f"{settings['device']}, preset {settings['preset']}, meta-batch "
            f"{settings['meta_batch']}, {settings['ways']}-way {settings['shots']}-shot, "
            f"{settings['query']} query/class, hidden {settings['hidden']}, {settings['dtype']}"
        )
        if settings.get("threads"):
            where += f", {settings['threads']} thread(s)"
        tables = []
        for what, key in (("Time per meta-step (ms)", "ms_per_step"), ("Memory", "peak_memory_mb")):
            title = what if key == "ms_per_step" else f"Memory of a meta-step: {'; '.join(kinds)}"
            t = Table(title=title, title_justify="left", header_style="bold")
            t.add_column("Solver")
            t.add_column("Family")
            for k in counts:
                t.add_column(f"K={k}", justify="right")
            for solver in order:
                cells = []
                measured = by_solver[solver]
                once = all(not r.get("inner_steps_matter") for r in measured.values())
                for k in counts:
                    row = measured.get(k)
                    if row is None and once and measured:
                        row = next(iter(measured.values()))
                        if k != counts[0]:
                            cells.append("[dim]same[/]")
                            continue
                    if row is None:
                        cells.append("—")
                    elif row.get("error"):
                        cells.append("[red]failed[/]")
                    elif key == "ms_per_step":
                        cells.append(_fmt(_num(row.get(key)), ".1f"))
                    else:
                        cells.append(_memory(_num(row.get(key))))
                t.add_row(escape(str(solver)), escape(str(families[solver])), *cells)
            if key == "ms_per_step":
                t.caption = "K: inner steps; the median of the timed steps of each measurement"
                t.caption_justify = "left"
            tables.append(t)
        lines = [Text.from_markup(f"[bold]Scaling with inner steps[/]: {escape(str(where))}")]
        lines += tables
        for v in verdicts(rows):
            style = {True: "green", False: "bold red", None: "dim"}[v.as_expected]
            lines.append(
                Text.from_markup(f"  [{style}]{escape(str(v.solver))}[/]: ") + Text(v.text)
            )
        lines.append(Text(f"  {TREND_RULE}", style="dim"))
        errors = [r for r in rows if r.get("error")]
        for row in errors[:3]:
            lines.append(
                Text(f"  {row['solver']} at {row['inner_steps']} inner steps: {row['error']}")
            )
        out.append(Group(*lines))
    return out
