"""The aggregated (or per-run) records as plain text: Markdown, CSV and JSON.

Stored values keep full precision; Markdown rounds each column for reading (``DIGITS``),
CSV and JSON write the values as stored, for dashboards and analysis.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from raybench.report.records import MISSING, SUMMARY_SCHEMA

FORMATS = ("rich", "markdown", "csv", "json")


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


def to_csv(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Header and one row per record; missing values empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for r in records:
        writer.writerow(["" if r.get(n) is None else r.get(n) for n in names])
    return buffer.getvalue()


def to_json(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """A list of records; missing values null."""
    data = [{n: r.get(n) for n in names} for r in records]
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
    raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS[1:])}")
