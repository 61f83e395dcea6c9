"""The report as Rich tables that fit the terminal: one table per setting, best values in
bold green.

The content comes from :mod:`raybench.report.records`; this module only decides how it
looks. Rich squeezes every column of a table that is too wide, names included, so the
tables are laid out here instead: each column gets the width its content needs, the
solver and the test accuracy (with its interval) always, then the other columns in order
of importance while they fit; the rest go to a continuation table under the first, with
the solver repeated. ``--columns`` picks and orders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from raybench.report.columns import RUN_GROUPS, group_of
from raybench.report.records import (
    NOTES,
    config_key,
    method_note,
    run_views,
    setting_captions,
    setting_key,
    setting_label,
)
from raybench.report.stability import finite
from raybench.report.summary_columns import (
    BEST,
    RICH,
    SUMMARY,
    Cell,
    SummaryColumn,
    shown_columns,
)
from raybench.report.text import MISSING, format_duration, format_memory, solver_label
from raybench.report.tuning import TUNING_NOTE, has_tuning


@dataclass(frozen=True)
class Column:
    """One column of a terminal table. A wrapping column is at most ``max_width`` wide,
    but never narrower than the widest first line of its cells (a solver's name)."""

    key: str
    header: str
    justify: str = "right"
    wrap: bool = False
    max_width: int = 0


RUN_COLUMNS = (
    Column("solver", "Run", "left", wrap=True, max_width=26),
    Column("test_acc", "Test acc. %\n± 95% CI"),
    Column("status", "Status", "left", wrap=True, max_width=40),
    Column("family", "Family", "left"),
    Column("val_acc", "Val. %"),
    Column("ms_per_step", "ms/step"),
    Column("peak_memory_mb", "Mem."),
    Column("wall_time_s", "Wall"),
    Column("roughness", "Rough."),
    Column("steps", "Steps\n90/95%"),
    Column("options", "Options", "left", wrap=True, max_width=30),
)
RUN_DEFAULT = tuple(c.key for c in RUN_COLUMNS)
ESSENTIAL = ("solver", "test_acc")  # in the first table, whatever the width


# ---------------------------------------------------------------- layout


def cell_width(markup: str) -> int:
    """The widest line of a cell as the terminal shows it (markup removed)."""
    return max((Text.from_markup(line).cell_len for line in markup.split("\n")), default=0)


def column_width(column: Column, cells: Sequence[str]) -> int:
    header = max(Text(line).cell_len for line in column.header.split("\n"))
    content = max((cell_width(c) for c in cells), default=0)
    if column.wrap:
        first = max((cell_width(c.split("\n")[0]) for c in cells), default=0)
        content = max(first, min(content, column.max_width))
    return max(header, content, 1)


def table_width(widths: Sequence[int]) -> int:
    """Rich's width of a table with these column widths: one space of padding on each
    side of a cell, a border between columns and at both edges."""
    return sum(w + 2 for w in widths) + len(widths) + 1


def split_columns(
    columns: Sequence[Column], widths: Mapping[str, int], width: int | None
) -> list[list[Column]]:
    """Columns per table, in their order: the first table holds the essential columns and
    the next ones up to the first that does not fit; each further table repeats the
    first column (the solver) and goes on from there."""
    identity = list(columns[:1])
    pending = list(columns[1:])
    groups: list[list[Column]] = []
    while pending:
        used = table_width([widths[c.key] for c in identity])
        chosen: list[Column] = []
        for column in pending:
            need = widths[column.key] + 3
            must = not groups and column.key in ESSENTIAL
            if not (must or width is None or used + need <= width):
                break
            chosen.append(column)
            used += need
        if not chosen:  # wider than any terminal table: alone, Rich wraps what it can
            chosen = pending[:1]
        groups.append(identity + chosen)
        pending = pending[len(chosen) :]
    return groups or [identity]


def fitted_tables(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, str]],
    width: int | None,
) -> list[Table]:
    """The rows as one table, or several when the columns do not fit ``width``."""
    widths = {c.key: column_width(c, [r[c.key] for r in rows]) for c in columns}
    out = []
    for i, group in enumerate(split_columns(columns, widths, width)):
        table = Table(
            title=title if i == 0 else f"{title} (continued)",
            title_justify="left",
            header_style="bold",
        )
        for c in group:
            table.add_column(
                c.header,
                justify=c.justify,  # type: ignore[arg-type]
                no_wrap=not c.wrap,
                width=widths[c.key],
            )
        for r in rows:
            table.add_row(*(r[c.key] for c in group))
        out.append(table)
    return out


def note(markup: str) -> Text:
    """Text under a table at the console's full width (a caption would be as narrow as
    the table)."""
    return Text.from_markup(markup)


def chosen_columns(
    available: Sequence[Column],
    default: Sequence[str],
    chosen: Sequence[str] | None,
    groups: Mapping[str, Sequence[str]],
) -> list[Column]:
    """The essential columns, then the chosen ones (names as ``--columns`` gives them,
    mapped to their column) in the order given, or the default ones."""
    by_key = {c.key: c for c in available}
    keys = list(ESSENTIAL)
    for name in default if chosen is None else chosen:
        key = name if name in by_key else group_of(name, groups)
        if key is not None and key in by_key and key not in keys:
            keys.append(key)
    return [by_key[k] for k in keys]


def terminal_column(column: SummaryColumn) -> Column:
    """A summary column's terminal layout."""
    justify = "left" if column.left else "right"
    wrap = column.max_width > 0
    return Column(column.name, column.headers["rich"], justify, wrap, column.max_width)


# ---------------------------------------------------------------- cells


def _best_values(records: Sequence[Mapping[str, Any]], spec: Mapping[str, bool]) -> dict:
    """Per column, the best value (highest or lowest) among completed runs, or summary rows
    with a completed run; nothing to highlight when there is only one row."""
    out: dict[str, float | None] = dict.fromkeys(spec)
    if len(records) < 2:
        return out

    def eligible(r: Mapping[str, Any]) -> bool:
        return r.get("status") == "completed" if "status" in r else bool(r.get("completed"))

    for key, highest in spec.items():
        values = [v for r in records if eligible(r) and (v := finite(r.get(key))) is not None]
        if values:
            out[key] = max(values) if highest else min(values)
    return out


RUN_BEST = {
    "test_acc": True,
    "val_acc": True,
    "wall_time_s": False,
    "ms_per_step": False,
    "peak_memory_mb": False,
}


def _mark(text: str, value: Any, best: float | None) -> str:
    good = best is not None and finite(value) is not None and finite(value) == best
    return f"[{BEST}]{text}[/]" if good else text


def _fixed(value: Any, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _error_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Under a setting's table: why its runs failed or diverged, in full."""
    lines = []
    for r in rows:
        if r.get("errors"):
            config = escape(str(r["config"]))
            name = escape(solver_label(r))
            lines.append(f"[red]✗[/] {name} [dim]{config}[/]: {escape(r['errors'])}")
    return lines


# ---------------------------------------------------------------- tables


def summary_tables(
    records: Sequence[Mapping[str, Any]],
    runs: pa.Table,
    title: str = "raybench",
    *,
    width: int | None = None,
    columns: Sequence[str] | None = None,
    tuning_protocol: Sequence[str] = (),
) -> list[Table | Text]:
    """The aggregated records as Rich tables, one per setting (continued in a second table
    when ``width`` is too narrow for its columns), best values per setting in bold green;
    under each setting its protocol and the errors of its failed runs, the notes last,
    then a sweep's ``tuning_protocol`` lines."""
    captions = setting_captions(runs)
    first_rows: dict[tuple[str, str], dict] = {}
    for row in runs.to_pylist():
        first_rows.setdefault((setting_label(setting_key(row)), config_key(row)), row)
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_setting.setdefault(record["setting"], []).append(record)
    shown = shown_columns("rich", columns, has_tuning(records))
    layout = [terminal_column(c) for c in shown]
    marked = {c.best[0]: c.best[1] for c in SUMMARY if c.best is not None}
    out: list[Table | Text] = []
    for label, rows in by_setting.items():
        best = _best_values(rows, marked)
        cells = [
            {c.name: c.cell(r, Cell(RICH, best, first_rows.get((label, r["config"]), {})))
             for c in shown}
            for r in rows
        ]  # fmt: skip
        out += fitted_tables(f"{escape(label)} — {title}", layout, cells, width)
        protocol = f"[dim]{escape(captions.get(label, ''))}[/]"
        methods = method_note(rows)
        how = [f"[dim]Δ best: {escape(methods)}.[/]"] if methods else []
        out.append(note("\n".join([protocol, *how, *_error_lines(rows)])))
    if out:
        notes = [*NOTES, TUNING_NOTE] if has_tuning(records) else list(NOTES)
        lines = [f"Tuning protocol: {line}." for line in tuning_protocol]
        out.append(note("\n".join(f"[dim]{escape(n)}[/]" for n in [*notes, *lines])))
    return out


def _run_cells(v: Mapping[str, Any], best: Mapping[str, float | None]) -> dict[str, str]:
    acc, ci = v["test_acc"], v["test_ci95"]
    test = MISSING if acc is None else f"{acc:.2f} ± {ci or 0:.2f}"
    val = v["val_acc"]
    status = escape(str(v["status"] or "?"))
    if v["status"] != "completed":
        total = v["meta_steps"]
        done = f"{v['steps_done']}/{total}" if total else str(v["steps_done"])
        status = f"[red]{status}[/] at {done}"
        if v.get("error"):
            status += f": {escape(str(v['error']))}"
    solver = solver_label(v)
    seed = MISSING if v["seed"] is None else str(v["seed"])
    return {
        "solver": f"{escape(solver)} seed {seed}",
        "family": escape(str(v["family"] or MISSING)),
        "options": escape(v["options"] or MISSING),
        "test_acc": _mark(test, acc, best["test_acc"]),
        "val_acc": _mark(MISSING if val is None else f"{val:.2f}", val, best["val_acc"]),
        "roughness": _fixed(v["roughness"], 2),
        "steps": MISSING if v["steps_90"] is None else f"{v['steps_90']}/{v['steps_95']}",
        "wall_time_s": _mark(
            format_duration(v["wall_time_s"]), v["wall_time_s"], best["wall_time_s"]
        ),
        "ms_per_step": _mark(_fixed(v["ms_per_step"], 1), v["ms_per_step"], best["ms_per_step"]),
        "peak_memory_mb": _mark(
            format_memory(v["peak_memory_mb"]), v["peak_memory_mb"], best["peak_memory_mb"]
        ),
        "status": status,
    }


def runs_table(
    table: pa.Table,
    title: str = "raybench",
    curves: pa.Table | None = None,
    *,
    width: int | None = None,
    columns: Sequence[str] | None = None,
) -> Group:
    """One row per run, a table per setting: run (solver and seed), test accuracy with its
    95% interval, status (with the meta-steps done and the error unless completed),
    family, validation accuracy, cost, the run's stability measures and options; the best
    value of each measure among completed runs of a setting in bold green."""
    views = [v for _, v in run_views(table, curves)]
    shown = chosen_columns(RUN_COLUMNS, RUN_DEFAULT, columns, RUN_GROUPS)
    by_setting: dict[Any, list[Mapping[str, Any]]] = {}
    for v in views:
        by_setting.setdefault(v["setting_key"], []).append(v)
    captions = setting_captions(table)
    out: list[Table | Text] = []
    for key, members in by_setting.items():
        best = _best_values(members, RUN_BEST)
        label = setting_label(key)
        cells = [_run_cells(v, best) for v in members]
        out += fitted_tables(f"{escape(label)} — {title}", shown, cells, width)
        out.append(note(f"[dim]{escape(captions.get(label, ''))}[/]"))
    return Group(*out)


def comparison_table(result: Any, detect: float | None = None) -> Table:
    """One setting of ``raybench compare``: both sides' per-seed means, the difference
    with its interval and p-value, how it was computed and why, the variance terms, the
    difference it would detect and (``detect``) the seeds a difference needs."""
    from raybench.report.power import detectable, seeds_needed

    c = result.comparison
    table = Table(
        title=escape(f"{result.a.label} vs {result.b.label} — {result.setting}"),
        title_justify="left",
        show_header=False,
        header_style="bold",
    )
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    for side, config, seeds, means in (
        ("A", result.a, result.seeds_a, c.seed_means_a if c else ()),
        ("B", result.b, result.seeds_b, c.seed_means_b if c else ()),
    ):
        table.add_row(side, f"{escape(config.label)} [dim]config {escape(str(config.config))}[/]")
        if means:
            per_seed = ", ".join(f"seed {s}: {m:.2f}" for s, m in zip(seeds, means))
            table.add_row("  per seed %", f"{per_seed}; mean {sum(means) / len(means):.2f}")
    if c is None:
        table.add_row("not compared", escape(result.note or ""))
        return table
    table.add_row(
        "A − B",
        f"{c.diff:+.2f} points, 95% CI [{c.low:+.2f}, {c.high:+.2f}] (± {c.half_width:.2f})",
    )
    table.add_row("p-value", f"{c.p_value:.3g} (unadjusted: a single pair)")
    table.add_row("method", f"{escape(c.method)}; df {c.df:.1f}, SE {c.se:.3f}")
    if c.why:
        table.add_row("  because", escape(c.why))
    table.add_row(
        "power", f"detects a true difference of {detectable(c):.2f} points with 80% power at 5%"
    )
    if detect is not None:
        needed = seeds_needed(c, detect)
        text = (
            f"{needed} seeds on each side detect {detect:g} points with 80% power"
            if needed is not None
            else f"no number of seeds detects {detect:g} points with 80% power by this "
            "method (the task term alone is too large, or seed variation is unknown)"
        )
        table.add_row("seeds needed", text)
    table.add_row("tasks, seeds", f"{c.tasks} test tasks; {c.seeds_a} + {c.seeds_b} seeds")
    seeds, tasks = c.variance.get("seeds", 0.0), c.variance.get("tasks", 0.0)
    table.add_row(
        "Var(A − B)",
        f"seeds {seeds:.4g} + tasks {tasks:.4g} = {seeds + tasks:.4g} (SE² {c.se**2:.4g})",
    )
    return table


def records_table(
    title: str, rows: Sequence[Mapping[str, Any]], names: Sequence[str], width: int | None
) -> Group:
    """Plain records (a sweep's trials) as terminal tables: every column, as stored."""
    from raybench.report.flat import plain_cell

    first = [n for n in ("solver", "trial_id") if n in names]
    names = [*first, *(n for n in names if n not in first)]
    columns = [Column(n, n, "left", wrap=True, max_width=30) for n in names]
    cells = [{n: escape(plain_cell(r.get(n), n)) for n in names} for r in rows]
    return Group(*fitted_tables(title, columns, cells, width))
