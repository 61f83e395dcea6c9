"""Rich tables for the fidelity and scaling studies, built from their Parquet tables alone."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from raybench.assumption_checks import VIOLATIONS, solver_assumptions, violations
from raybench.measurements.bench import SPREAD_WARNING, bench_warnings
from raybench.measurements.scaling import TREND_RULE, memory_kind_name, setting_groups, verdicts
from raybench.report.text import format_memory
from raybench.solver_catalog import family_rank

if TYPE_CHECKING:
    from raybench.measurements.ab import ABResult

PSEUDO_NOTE = (
    "† pseudo-gradient theta - phi: not a gradient of the MAML objective; its norm follows "
    "inner_lr x inner steps, so only its cosine is comparable"
)


def _present(value: Any) -> float | None:
    """A stored number, or None for a missing or NaN one."""
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
    "tasks (see docs/solvers.md)"
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

    return [_fidelity_table(rows) for rows in sorted(studies.values(), key=study_order)]


FIDELITY_HEADERS = (
    ("Solver", "left"), ("Family", "left"), ("Knob", "left"), ("Value", "right"),
    ("Cosine", "right"), ("Rel. error", "right"), ("Norm ratio", "right"), ("ms", "right"),
    ("Vs own exact", "right"), ("Exact vs MAML", "right"), ("Other options", "left"),
    ("Assumptions", "left"),
)  # fmt: skip


def _fidelity_table(rows: list[dict[str, Any]]) -> Table:
    """One point's comparison: a row per solver and knob value, its settings as title and
    caption."""
    first = rows[0]
    title = (
        f"Meta-gradient fidelity vs MAML at {first.get('point')} "
        f"({first.get('point_source')}): "
        f"{first.get('tasks')} validation tasks, {first.get('inner_steps')} inner steps, "
        f"inner lr {first.get('inner_lr'):g}, {first.get('dtype')}"
    )
    t = Table(title=title, title_justify="left", header_style="bold")
    for header, justify in FIDELITY_HEADERS:
        t.add_column(header, justify=justify)  # type: ignore[arg-type]
    rows = sorted(
        rows,
        key=lambda r: (
            family_rank(r.get("family")),
            str(r.get("solver")),
            _present(r.get("knob_value")) or 0.0,
        ),
    )
    for row in rows:
        name = str(row.get("solver")) + (" †" if row.get("pseudo_gradient") else "")
        t.add_row(
            escape(name),
            escape(str(row.get("family") or "—")),
            escape(str(row.get("knob") or "—")),
            _fmt(_present(row.get("knob_value")), "g"),
            _fmt(_present(row.get("cosine")), ".6f"),
            _fmt(_present(row.get("rel_error")), ".3e"),
            _fmt(_present(row.get("norm_ratio")), ".4f"),
            _fmt(_present(row.get("time_ms")), ".0f"),
            _fmt(_present(row.get("vs_exact_rel_error")), ".3e"),
            _fmt(_present(row.get("exact_rel_error")), ".3e"),
            _other_options(row),
            assumption_notes(row),
        )
    t.caption = escape("\n".join(_fidelity_caption(rows)))
    t.caption_justify = "left"
    return t


def _fidelity_caption(rows: list[dict[str, Any]]) -> list[str]:
    first = rows[0]
    caption = [
        "reference: explicit MAML, ||g_maml|| = "
        f"{_fmt(_present(first.get('maml_grad_norm')), '.4g')}; "
        f"{first.get('ways')}-way {first.get('shots')}-shot, {first.get('query')} query/class, "
        f"hidden {first.get('hidden')}, preset {first.get('preset')}; "
        f"device: {first.get('device')}"
    ]
    if any(row.get("pseudo_gradient") for row in rows):
        caption.append(PSEUDO_NOTE)
    if any(row.get("exact_method") is not None for row in rows):
        methods = sorted({str(r["exact_method"]) for r in rows if r.get("exact_method")})
        worst = max((_present(r.get("exact_residual")) or 0.0) for r in rows)
        caption.append(
            f"{EXACT_NOTE}; exact solutions by {'/'.join(methods)}, relative residual "
            f"at most {worst:.1e}"
        )
    return caption


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
                        cells.append(_fmt(_present(row.get(key)), ".1f"))
                    else:
                        cells.append(_memory(_present(row.get(key))))
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


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], low: float = 0.0, high: float = 100.0) -> str:
    """Accuracies (%) as one line of block characters, on a fixed 0..100 scale so lines
    compare."""
    if not values:
        return ""
    span = (high - low) or 1.0
    return "".join(
        SPARKS[min(len(SPARKS) - 1, max(0, int((v - low) / span * len(SPARKS))))] for v in values
    )


def sensitivity_rich(table: pa.Table, solver: str, preset: str) -> Table:
    rows = table.to_pylist()
    key = rows[0]["setting"] if rows else "?"
    out = Table(
        title=f"Sensitivity of {escape(solver)} to {escape(str(key))} (preset {escape(preset)})",
        title_justify="left",
        header_style="bold",
    )
    for column, justify in (
        (key, "right"),
        ("Runs", "right"),
        ("Diverged", "right"),
        ("Test acc. % (mean ± std)", "right"),
        ("Val. acc. %", "right"),
        ("Validation accuracy over meta-steps (0-100%)", "left"),
    ):
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        acc, std = row["test_acc_mean"], row["test_acc_std"]
        test = "—" if acc is None else f"{acc:.2f}" + ("" if std is None else f" ± {std:.2f}")
        val = "—" if row["final_val_acc"] is None else f"{row['final_val_acc']:.2f}"
        curve = [acc for _, acc in json.loads(row["val_curve_json"])]
        diverged = row["diverged"] + row["failed"]
        out.add_row(
            escape(str(row["value"])),
            str(row["runs"]),
            f"[red]{diverged}[/]" if diverged else "0",
            test,
            val,
            sparkline(curve),
        )
    return out


def bench_rich(table: pa.Table) -> RenderableType:
    """The bench table (median, min and max of the timed steps, how many) and, under it,
    the warnings of :func:`bench_warnings`."""
    from raybench.report.text import format_duration

    rows = table.to_pylist()
    first = rows[0] if rows else {}
    title = (
        f"raybench bench: {escape(str(first.get('device', '?')))}, torch "
        f"{escape(str(first.get('torch_version', '?')))}, preset "
        f"{escape(str(first.get('preset', '?')))} ({first.get('ways')}-way "
        f"{first.get('shots')}-shot, "
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
        ("max", "right"),
        ("steps", "right"),
        ("Peak mem.", "right"),
        ("GFLOP/step", "right"),
        ("GFLOP/s", "right"),
        ("of matmul", "right"),
        (f"{first.get('meta_steps', '?')} steps", "right"),
        ("x its loop", "right"),
    ):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    for i, row in enumerate(rows):
        speed = row["speedup_vs_loop"]
        wide = (row.get("spread") or 0.0) > SPREAD_WARNING
        out.add_row(
            escape(str(row["solver"])),
            escape(str(row["family"])),
            escape(str(row["implementation"])),
            ms(row["ms_per_step"]),
            ms(row["ms_min"]),
            f"[yellow]{ms(row.get('ms_max'))}[/]" if wide else ms(row.get("ms_max")),
            "—" if row.get("timed_steps") is None else str(row["timed_steps"]),
            format_memory(row["peak_memory_mb"]),
            "—" if not row.get("flops_per_step") else f"{row['flops_per_step'] / 1e9:.2f}",
            "—" if row.get("gflops") is None else f"{row['gflops']:.1f}",
            "—" if row.get("peak_fraction") is None else f"{row['peak_fraction']:.0%}",
            format_duration(row["implied_run_s"]),
            "—" if speed is None else f"{speed:.1f}x vs {escape(str(row['reference']))}",
            end_section=i + 1 < len(rows)
            and rows[i + 1]["implementation"] != row["implementation"],
        )
        if row["error"]:
            out.add_row("", "", f"[red]{escape(str(row['error']))}[/]", *[""] * 10)
    warm = first.get("warmup_steps")
    out.caption = (
        f"memory: {memory_kind_name(first.get('memory_kind'))}; {first.get('threads')} torch "
        f"thread(s); median, min and max of the timed steps"
        + (f" after {warm} warm-up step(s)" if warm is not None else " after warm-up")
        + "; device synchronised around each step; a step here is meta_grad + Adam on one "
        "fixed batch (no task sampling, no evaluation); GFLOP/step: convolutions and matrix "
        "products of meta_grad, counted on the per-task form; of matmul: the achieved GFLOP/s "
        "over a float32 1024x1024 matmul's in the same process"
        + (f" ({first['matmul_gflops']:.0f} GFLOP/s)" if first.get("matmul_gflops") else "")
    )
    out.caption_justify = "left"
    warnings = [Text(f"warning: {w}", style="yellow") for w in bench_warnings(table)]
    return Group(out, *warnings) if warnings else out


def ab_rich(results: Sequence[ABResult]) -> Any:
    """The A/B results as a terminal table."""
    table = Table(title="raybench bench --ab: A and B interleaved in one process")
    for name, justify in (
        ("solver", "left"), ("B changes", "left"), ("A ms/step", "right"),
        ("B ms/step", "right"), ("B / A (min-max)", "right"), ("A % matmul", "right"),
        ("B % matmul", "right"), ("grad diff", "right"), ("rounds", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]

    def percent(x: float | None) -> str:
        return "—" if x is None else f"{100 * x:.1f}%"

    for r in results:
        table.add_row(
            escape(r.solver), escape(r.changed), f"{r.ms_a:.1f}", f"{r.ms_b:.1f}",
            f"{r.ratio:.3f} ({r.ratio_low:.2f}-{r.ratio_high:.2f})",
            percent(r.fraction("a")), percent(r.fraction("b")), f"{r.grad_difference:.1e}",
            str(r.rounds),
        )  # fmt: skip
    device = results[0].device if results else ""
    threads = results[0].threads if results else 0
    rate = results[0].matmul_gflops if results else None
    table.caption = (
        f"{escape(str(device))}, {threads} thread(s); matmul {rate:.0f} GFLOP/s in this "
        "process. B / A below 1: B is faster. grad diff: max |g_B - g_A| / max |g_A| at the "
        "common start "
        "(about 1e-6 or less: the same meta-gradient up to float32 rounding)."
        if rate
        else None
    )
    return table
