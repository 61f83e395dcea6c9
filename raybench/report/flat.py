"""The aggregated (or per-run) records as plain text: Markdown, CSV, JSON and LaTeX.

Stored values keep full precision; Markdown and LaTeX round each column for reading
(``DIGITS``), CSV and JSON write the values as stored, for dashboards and analysis. The
LaTeX table is a booktabs ``table`` for a paper: chosen columns, the best row of each
setting in bold, a star on the rows not significantly worse than it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from raybench.report.records import SUMMARY_SCHEMA
from raybench.report.summary_columns import LATEX, MARKDOWN, Cell, shown_columns, table_notes
from raybench.report.text import latex_escape
from raybench.report.tuning import has_tuning
from raybench.report.views import MISSING

FORMATS = ("rich", "markdown", "csv", "json", "latex")


# Markdown's rounding per column (decimals); other floats keep 4 significant digits.
DIGITS = {
    "test_acc": 2,
    "test_ci95": 2,
    "test_std": 2,
    "val_acc": 2,
    "vs_best": 2,
    "vs_best_ci95": 2,
    "roughness": 2,
    "steps_90": 0,
    "steps_95": 0,
    "wall_time_s": 1,
    "ms_per_step": 1,
    "peak_memory_mb": 0,
}


def plain_cell(value: Any, name: str | None = None) -> str:
    """A value as the Markdown table writes it: ``—`` for missing, a float rounded for its
    column (``DIGITS``; p-values to 3 significant digits), else ``str``."""
    if value is None:
        return MISSING
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        if name in DIGITS:
            return f"{value:.{DIGITS[name]}f}"
        return f"{value:.3g}" if name is not None and name.endswith("_p") else f"{value:.4g}"
    return str(value)


def to_markdown(
    records: Sequence[Mapping[str, Any]], names: Sequence[str], captions: Iterable[str] = ()
) -> str:
    """A pipe table (one line per record), then the caption lines as a list under it."""

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(names), line("---" for _ in names)]
    lines += [line(plain_cell(r.get(n), n) for n in names) for r in records]
    captions = list(captions)
    if captions:
        lines.append("")
        lines += [f"- {c}" for c in captions]
    return "\n".join(lines) + "\n"


def _machine(value: Any) -> Any:
    """Timestamps as ISO 8601 text; everything else as it is."""
    return value.isoformat() if isinstance(value, datetime) else value


def to_csv(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Header and one row per record; missing values empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for r in records:
        writer.writerow(["" if r.get(n) is None else _machine(r.get(n)) for n in names])
    return buffer.getvalue()


def to_json(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """A list of records; missing values null."""
    data = [{n: _machine(r.get(n)) for n in names} for r in records]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_flat(
    records: Sequence[Mapping[str, Any]],
    fmt: str,
    names: Sequence[str] | None = None,
    captions: Iterable[str] = (),
) -> str:
    """The same table as Markdown, CSV or JSON (plain values, no markup)."""
    names = list(names or SUMMARY_SCHEMA.names)
    if fmt == "markdown":
        return to_markdown(records, names, captions)
    if fmt == "csv":
        return to_csv(records, names)
    if fmt == "json":
        return to_json(records, names)
    if fmt == "latex":
        return to_latex(records, names, captions)
    raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS[1:])}")


# ---------------------------------------------------------------- LaTeX


def latex_label(name: str) -> str:
    """A ``\\label`` key: letters, digits and ``-:.`` only."""
    return re.sub(r"[^A-Za-z0-9:.-]+", "-", name).strip("-") or "table"


def _latex_table(
    spec: str,
    header: Sequence[str],
    blocks: Sequence[tuple[str | None, Sequence[Sequence[str]]]],
    caption: str,
    label: str,
    comments: Iterable[str] = (),
) -> str:
    """A booktabs table: ``blocks`` of rows, each under an optional group heading."""
    width = len(header)
    lines = [f"% {' '.join(line.split())}" for line in comments]
    lines += [
        "% needs \\usepackage{booktabs}",
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{{caption}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(header) + " \\\\",
        "\\midrule",
    ]
    for i, (heading, rows) in enumerate(blocks):
        if i:
            lines.append("\\midrule")
        if heading is not None:
            lines.append(f"\\multicolumn{{{width}}}{{l}}{{\\textit{{{heading}}}}} \\\\")
        lines += [" & ".join(row) + " \\\\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def to_latex(
    records: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    captions: Iterable[str] = (),
    *,
    caption: str = "",
    label: str = "tab:raybench",
) -> str:
    """Any records as a booktabs table, one column per name (numbers right-aligned and
    rounded as in Markdown); the caption lines become LaTeX comments above it."""

    def numeric(name: str) -> bool:
        values = [r.get(name) for r in records if r.get(name) is not None]
        return bool(values) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        )

    spec = "".join("r" if numeric(n) else "l" for n in names)
    header = [latex_escape(n) for n in names]
    rows = [[latex_escape(plain_cell(r.get(n), n)) for n in names] for r in records]
    text = latex_escape(caption) if caption else "raybench results"
    return _latex_table(spec, header, [(None, rows)], text, label, captions)


def _by_setting(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    settings: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        settings.setdefault(str(r["setting"]), []).append(r)
    return settings


def summary_latex(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    captions: Iterable[str] = (),
    *,
    label: str = "tab:raybench",
) -> str:
    """The aggregated table for a paper: solver, test accuracy with its 95% interval and
    the chosen ``columns`` (default accuracy, Δ best, ms/step, memory), one block per
    setting; bold the best row of a setting, a star on every row not significantly worse
    than it. ``captions`` (the protocol lines) become comments."""
    shown = shown_columns("latex", columns, has_tuning(records))
    spec = "".join(c.latex_spec or ("l" if c.left else "r") for c in shown)
    header = [c.headers["latex"] for c in shown]
    settings = _by_setting(records)
    cell = Cell(LATEX)
    blocks = [
        (latex_escape(name) if len(settings) > 1 else None,
         [[c.cell(r, cell) for c in shown] for r in rows])
        for name, rows in settings.items()
    ]  # fmt: skip
    caption = "; ".join(table_notes("latex", shown, records)) + "."
    return _latex_table(spec, header, blocks, caption, label, captions)


def summary_markdown_compact(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    captions: Iterable[str] = (),
) -> str:
    """The aggregated table for a README or slides: one Markdown column per group, values
    as the terminal shows them (accuracy ± its interval, Δ best ± its interval with ★ on
    rows not significantly worse than the best, memory and durations with units), one
    table per setting, the protocol and the marks explained under it."""
    shown = shown_columns("markdown", columns, has_tuning(records))
    settings = _by_setting(records)
    cell = Cell(MARKDOWN)
    out = []
    for name, rows in settings.items():
        if len(settings) > 1:
            out += [f"**{name}**", ""]
        out.append("| " + " | ".join(c.headers["markdown"] for c in shown) + " |")
        out.append("| " + " | ".join("---" if c.left else "---:" for c in shown) + " |")
        for r in rows:
            cells = [c.cell(r, cell).replace("|", "\\|") for c in shown]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += [f"- {n}" for n in [*captions, *table_notes("markdown", shown, records)]]
    return "\n".join(out).rstrip() + "\n"
