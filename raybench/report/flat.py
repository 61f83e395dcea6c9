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

from raybench.report.columns import group_of
from raybench.report.records import (
    SUMMARY_SCHEMA,
    format_duration,
    format_memory,
    method_note,
    versus_best_text,
)
from raybench.report.tuning import default_text, gain_text, has_tuning
from raybench.report.views import MISSING, TIED_MARK

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

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"$|$",
    "±": r"$\pm$",
    "—": "---",
    "–": "--",
    "Δ": r"$\Delta$",
    "★": r"$\star$",
    "≠": r"$\neq$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "×": r"$\times$",
    "²": r"\textsuperscript{2}",
    "‖": r"$\|$",
    "λ": r"$\lambda$",
    "α": r"$\alpha$",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))


def latex_escape(text: str) -> str:
    """Text as LaTeX typesets it literally: its special characters escaped, the few
    symbols the report uses (± Δ ★ ≠ ...) as math, in one pass (no double escaping)."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIALS[m.group(0)], text)


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


# The summary's columns in LaTeX: header, alignment, and the caption's explanation.
LATEX_COLUMNS: dict[str, tuple[str, str, str]] = {
    "test_acc": ("Test acc.\\ (\\%)", "r", ""),
    "vs_best": ("$\\Delta$ best", "r", "$\\Delta$ best: difference to the best row of the "
                "setting with its 95\\% interval, paired over the test tasks"),
    "default": ("Default (\\%)", "r", "default: the solver's default configuration's "
                "test accuracy, same seeds"),
    "tuning_gain": ("Tuning gain", "r", "tuning gain: tuned minus default with its 95\\% "
                    "interval (* where $p < 0.05$), seed-paired where the seeds are shared"),
    "runs": ("Runs", "r", "runs: completed/diverged/failed"),
    "ms_per_step": ("ms/step", "r", "ms/step: median milliseconds per meta-step"),
    "peak_memory_mb": ("Memory (MiB)", "r", "memory: peak memory in MiB"),
    "val_acc": ("Val.\\ (\\%)", "r", "val.: final validation accuracy"),
    "test_std": ("Std", "r", "std: sample standard deviation of the test accuracy across seeds"),
    "wall_time_s": ("Wall (s)", "r", "wall: seconds per run"),
    "roughness": ("Rough.", "r", "rough.: roughness of the validation curve, in points"),
    "steps": ("Steps 90/95\\%", "r", "steps 90/95\\%: meta-steps to 90\\%/95\\% of the "
              "final validation accuracy"),
    "meta_steps": ("Meta-steps", "r", ""),
    "reference": ("Reference (\\%)", "l", "reference: the closest published accuracy"),
    "errors": ("Errors", "p{6cm}", ""),
}  # fmt: skip
LATEX_DEFAULT = ("test_acc", "vs_best", "ms_per_step", "peak_memory_mb")


def _num(value: Any, digits: int) -> str:
    return "---" if value is None else f"{value:.{digits}f}"


def _latex_cell(key: str, r: Mapping[str, Any]) -> str:
    verdict = r.get("vs_best_verdict")
    if key == "test_acc":
        if r.get("test_acc") is None:
            return "---"
        body = f"{r['test_acc']:.2f}"
        if r.get("test_ci95") is not None:
            body += f" \\pm {r['test_ci95']:.2f}"
        if verdict == "best":
            body = f"\\mathbf{{{body}}}"
        star = "^{\\star}" if verdict in ("best", "tied") else ""
        return f"${body}{star}$"
    if key == "vs_best":
        if verdict is None:
            return "---"
        if verdict == "best":
            return "best"
        return f"${r['vs_best']:+.2f} \\pm {r['vs_best_ci95']:.2f}$"
    if key == "runs":
        return f"{r['completed']}/{r['diverged']}/{r['failed']}"
    if key in ("default", "tuning_gain"):
        text = default_text(r) if key == "default" else gain_text(r)
        return "---" if text == MISSING else latex_escape(text)
    if key == "steps":
        if r.get("steps_90") is None and r.get("steps_95") is None:
            return "---"
        return f"{_num(r.get('steps_90'), 0)}/{_num(r.get('steps_95'), 0)}"
    if key == "reference":
        if r.get("ref_acc") is None:
            return "---"
        pm = f" $\\pm$ {r['ref_pm']:g}" if r.get("ref_pm") is not None else ""
        return f"{r['ref_acc']:g}{pm} ({latex_escape(str(r.get('ref_source') or '?'))})"
    if key == "errors":
        return latex_escape(r.get("errors") or "---")
    if key == "meta_steps":
        return "---" if r.get("meta_steps") is None else str(r["meta_steps"])
    digits = {"peak_memory_mb": 0, "wall_time_s": 0, "ms_per_step": 1}.get(key, 2)
    return _num(r.get(key), digits)


def _latex_solver(r: Mapping[str, Any]) -> str:
    notes = [str(r["source"])] if r.get("source") not in (None, "preset") else []
    if r.get("differs"):
        notes.append(str(r["differs"]))
    name = str(r["solver"]) + (f" ({'; '.join(notes)})" if notes else "")
    return latex_escape(name)


def summary_latex(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    captions: Iterable[str] = (),
    *,
    label: str = "tab:raybench",
) -> str:
    """The aggregated table for a paper: solver, test accuracy with its 95% interval and
    the chosen ``columns`` (``LATEX_COLUMNS``; default accuracy, Δ best, ms/step, memory),
    one block per setting; bold the best row of a setting, a star on every row not
    significantly worse than it. ``captions`` (the protocol lines) become comments."""
    default = LATEX_DEFAULT
    if has_tuning(records):
        default = ("test_acc", "vs_best", "default", "tuning_gain", *LATEX_DEFAULT[2:])
    groups = [group_of(k) or k for k in (columns or default)]
    keys = list(dict.fromkeys(["test_acc", *(k for k in groups if k in LATEX_COLUMNS)]))
    settings: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        settings.setdefault(str(r["setting"]), []).append(r)
    spec = "l" + "".join(LATEX_COLUMNS[k][1] for k in keys)
    header = ["Solver"] + [LATEX_COLUMNS[k][0] for k in keys]
    blocks = [
        (latex_escape(label_) if len(settings) > 1 else None,
         [[_latex_solver(r)] + [_latex_cell(k, r) for k in keys] for r in rows])
        for label_, rows in settings.items()
    ]  # fmt: skip
    where = "" if len(settings) != 1 else f", {latex_escape(next(iter(settings)))}"
    notes = [
        f"Test accuracy (\\%) on the fixed test tasks{where}: mean over the completed seeds "
        "$\\pm$ its 95\\% interval (over the test tasks for one seed, else over the seeds)"
    ]
    if any(r.get("vs_best_verdict") for r in records):
        notes.append(
            "bold: the best of its setting; $^\\star$: not significantly worse than the best "
            f"(over test tasks and seeds, {latex_escape(method_note(records) or '')}; "
            "Holm-adjusted $p \\geq 0.05$)"
        )
    notes += [LATEX_COLUMNS[k][2] for k in keys if LATEX_COLUMNS[k][2]]
    caption = "; ".join(notes) + "."
    return _latex_table(spec, header, blocks, caption, label, captions)


# The summary's columns in compact Markdown (one column per group, as the terminal shows
# them): header and alignment.
COMPACT_COLUMNS: dict[str, tuple[str, str]] = {
    "family": ("family", "---"),
    "tuned_values": ("tuned values", "---"),
    "test_acc": ("test acc. % (95% CI)", "---:"),
    "vs_best": ("Δ best (95% CI)", "---:"),
    "vs_best_detectable": ("detects (80%)", "---:"),
    "default": ("default % (95% CI)", "---:"),
    "tuning_gain": ("tuning gain (95% CI)", "---:"),
    "runs": ("runs", "---:"),
    "ms_per_step": ("ms/step", "---:"),
    "peak_memory_mb": ("peak memory", "---:"),
    "val_acc": ("val. %", "---:"),
    "test_std": ("std", "---:"),
    "wall_time_s": ("wall per run", "---:"),
    "roughness": ("roughness", "---:"),
    "steps": ("steps 90/95%", "---:"),
    "meta_steps": ("meta-steps", "---:"),
}
COMPACT_DEFAULT = ("family", "test_acc", "vs_best", "ms_per_step", "peak_memory_mb", "wall_time_s")


def _compact_cell(key: str, r: Mapping[str, Any]) -> str:
    verdict = r.get("vs_best_verdict")
    if key == "family":
        return str(r.get("family") or MISSING)
    if key == "tuned_values":
        return str(r.get("tuned_values") or MISSING)
    if key == "test_acc":
        if r.get("test_acc") is None:
            return MISSING
        text = f"{r['test_acc']:.2f}"
        text += f" ± {r['test_ci95']:.2f}" if r.get("test_ci95") is not None else ""
        return f"**{text}**" if verdict == "best" else text
    if key == "vs_best":
        return versus_best_text(r)
    if key == "default":
        return default_text(r)
    if key == "tuning_gain":
        return gain_text(r)
    if key == "runs":
        return f"{r['completed']}/{r['diverged']}/{r['failed']}"
    if key == "steps":
        if r.get("steps_90") is None and r.get("steps_95") is None:
            return MISSING
        return f"{_num(r.get('steps_90'), 0)}/{_num(r.get('steps_95'), 0)}".replace("---", MISSING)
    if key == "peak_memory_mb":
        return format_memory(r.get("peak_memory_mb"))
    if key == "wall_time_s":
        return format_duration(r.get("wall_time_s"))
    value = r.get(key)
    return MISSING if value is None else f"{value:.{DIGITS.get(key, 1)}f}"


def summary_markdown_compact(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    captions: Iterable[str] = (),
) -> str:
    """The aggregated table for a README or slides: one Markdown column per group, values
    as the terminal shows them (accuracy ± its interval, Δ best ± its interval with ★ on
    rows not significantly worse than the best, memory and durations with units), one
    table per setting, the protocol and the marks explained under it."""
    default = COMPACT_DEFAULT
    if has_tuning(records):
        default = ("family", "test_acc", "vs_best", "default", "tuning_gain", *default[3:])
    wanted = [k if k in COMPACT_COLUMNS else group_of(k) or k for k in columns or default]
    keys = list(dict.fromkeys(k for k in ["test_acc", *wanted] if k in COMPACT_COLUMNS))
    if "family" in wanted:  # keep the family right after the solver, where it reads best
        keys = ["family", *(k for k in keys if k != "family")]
    settings: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        settings.setdefault(str(r["setting"]), []).append(r)
    out = []
    for label, rows in settings.items():
        if len(settings) > 1:
            out += [f"**{label}**", ""]
        out.append("| solver | " + " | ".join(COMPACT_COLUMNS[k][0] for k in keys) + " |")
        out.append("| --- | " + " | ".join(COMPACT_COLUMNS[k][1] for k in keys) + " |")
        for r in rows:
            source = r.get("source")
            name = str(r["solver"]) + (f" ({source})" if source not in (None, "preset") else "")
            cells = [name, *(_compact_cell(k, r) for k in keys)]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    notes = [
        *captions,
        "test acc.: mean over the completed seeds ± its 95% interval (Student-t over the "
        "seeds; over the test tasks when one seed completed); bold: the best of the setting.",
    ]
    if "vs_best" in keys and any(r.get("vs_best_verdict") for r in records):
        notes.append(
            f"Δ best: difference to the best row of the setting (accuracy points) with its "
            f"95% interval over the test tasks and seeds, {method_note(records)}; "
            f"{TIED_MARK}: not significantly worse than the best (Holm-adjusted p ≥ 0.05)."
        )
    if "vs_best_detectable" in keys:
        notes.append(
            "detects (80%): the difference from the best row (accuracy points) that this "
            "comparison, with its own variances and seeds, detects with 80% power at 5%."
        )
    out += [f"- {n}" for n in notes]
    return "\n".join(out).rstrip() + "\n"
