"""The summary table's columns, each declared once: the record fields it stands for, its
header in each format that shows it, alignment, how its text is made, what its note says,
and which formats show it by default.

Three formats show one column per entry: the terminal's Rich tables (``rich``), compact
Markdown (``markdown``) and LaTeX (``latex``). The plain formats (Markdown rows, CSV,
JSON) write an entry's record fields instead. A format that shows an entry elsewhere (the
setting as each table's heading) says where; asking a format for an entry it cannot show
is a one-line error, never a column silently left out.

Adding a summary column: its field in :data:`raybench.report.records.SUMMARY_SCHEMA`, its
value in the records, and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape as rich_escape

from raybench.errors import RaybenchError
from raybench.report import references as refs
from raybench.report.records import method_note
from raybench.report.stability import finite
from raybench.report.text import (
    MISSING,
    acc_text,
    fixed,
    format_duration,
    format_memory,
    latex_escape,
    solver_label,
)
from raybench.report.tuning import gain_text
from raybench.report.views import TIED_MARK

SHOWN_FORMATS = ("rich", "markdown", "latex")
FORMAT_NAMES = {"rich": "terminal", "markdown": "compact Markdown", "latex": "LaTeX"}
BEST = "bold green"  # the terminal's best value of a setting


@dataclass(frozen=True)
class Style:
    """What a format's cell text differs by: its missing value, escaping, alarm marks."""

    name: str
    missing: str
    escape: Callable[[str], str]
    alarm: Callable[[str], str]  # counts of failed or diverged runs


RICH = Style("rich", MISSING, rich_escape, lambda text: f"[red]{text}[/]")
MARKDOWN = Style("markdown", MISSING, str, str)
LATEX = Style("latex", "---", latex_escape, str)
STYLES = {s.name: s for s in (RICH, MARKDOWN, LATEX)}


@dataclass(frozen=True)
class Cell:
    """What a cell's text may use besides its record: the format, and in the terminal the
    best value of each column in the setting and the configuration's first stored run."""

    style: Style
    best: Mapping[str, float | None] = field(default_factory=dict)
    first_run: Mapping[str, Any] = field(default_factory=dict)


Text = Callable[[Mapping[str, Any], Cell], "str | None"]  # None: the format's missing value
Note = Callable[[Sequence[Mapping[str, Any]]], "str | None"]


@dataclass(frozen=True)
class SummaryColumn:
    name: str  # as ``--columns`` names it
    fields: tuple[str, ...]  # the record fields it stands for (the plain formats write them)
    headers: Mapping[str, str]  # per format that shows it as a column
    text: Text | None = None
    left: bool = False  # aligned left (text), else right (numbers)
    latex_spec: str = ""  # LaTeX's column type, if not l or r
    notes: Mapping[str, Note] = field(default_factory=dict)  # per format, under the table
    best: tuple[str, bool] | None = None  # terminal: (field, highest) marked in bold green
    max_width: int = 0  # terminal: wraps at this width (0: never wraps)
    default: tuple[str, ...] = ()  # the formats that show it unless --columns says otherwise
    tuning: bool = False  # shown by default only where the records carry a sweep's tuning
    elsewhere: Mapping[str, str] = field(default_factory=dict)  # format -> where it shows
    flat_with: tuple[str, ...] = ()  # columns whose fields the plain formats write with it

    def cell(self, record: Mapping[str, Any], cell: Cell) -> str:
        """The cell's text in ``cell.style``; in the terminal, the setting's best value in
        bold green."""
        text = self.text(record, cell) if self.text is not None else None
        if text is None:
            return cell.style.missing
        if self.best is not None and cell.best:
            value, best = finite(record.get(self.best[0])), cell.best.get(self.best[0])
            if best is not None and value is not None and value == best:
                return f"[{BEST}]{text}[/]"
        return text


# ---------------------------------------------------------------- texts


def _solver(r: Mapping[str, Any], c: Cell) -> str:
    if c.style is LATEX:
        notes = [str(r["source"])] if r.get("source") not in (None, "preset") else []
        if r.get("differs"):
            notes.append(str(r["differs"]))
        return latex_escape(str(r["solver"]) + (f" ({'; '.join(notes)})" if notes else ""))
    if c.style is MARKDOWN:
        return solver_label(r)
    return _solver_lines(r)


def _solver_lines(record: Mapping[str, Any]) -> str:
    """Solver (and its config's source unless a preset) on the first line, never wrapped;
    family, own options, what differs from its other configurations, and whether runs
    failed, dimmed below."""
    lines = [rich_escape(solver_label(record))]
    lines.append(f"[dim]{rich_escape(str(record.get('family') or MISSING))}[/]")
    for key in ("options", "differs"):
        if record.get(key) is not None:
            lines.append(f"[dim]{rich_escape(str(record[key]))}[/]")
    bad = [f"{record[k]} {k}" for k in ("failed", "diverged") if record.get(k)]
    if bad and record.get("errors"):
        lines.append(f"[red]✗ {', '.join(bad)}[/]")
    assumptions = record.get("assumptions")  # implicit solvers: do their premises hold?
    if assumptions is not None and assumptions.startswith("violated: "):
        failed = assumptions.removeprefix("violated: ").split(", ")
        lines += ["[red]assumptions violated:[/]", *(f"[red] {rich_escape(f)}[/]" for f in failed)]
    elif assumptions is not None:
        lines += ["[green]assumptions:[/]", f"[green] {rich_escape(assumptions)}[/]"]
    return "\n".join(lines)


def _test_acc(r: Mapping[str, Any], c: Cell) -> str | None:
    """Accuracy ± its interval; bold on the best row (the terminal: the best value), and
    in LaTeX a star on every row not significantly worse than it."""
    if r.get("test_acc") is None:
        return None
    verdict = r.get("vs_best_verdict")
    if c.style is LATEX:
        body = f"{r['test_acc']:.2f}"
        if r.get("test_ci95") is not None:
            body += f" \\pm {r['test_ci95']:.2f}"
        if verdict == "best":
            body = f"\\mathbf{{{body}}}"
        star = "^{\\star}" if verdict in ("best", "tied") else ""
        return f"${body}{star}$"
    text = acc_text(r["test_acc"], r.get("test_ci95"))
    return f"**{text}**" if c.style is MARKDOWN and verdict == "best" else text


def versus_best_text(record: Mapping[str, Any], mark: Callable[[str], str] = str) -> str:
    """``best ★``, ``-0.42 ± 0.90 ★`` (not significantly worse) or ``-20.10 ± 3.00``;
    ``mark`` styles the best row's text and the ★ (Rich markup in the terminal)."""
    verdict = record.get("vs_best_verdict")
    if verdict is None:
        return MISSING
    if verdict == "best":
        return mark(f"best {TIED_MARK}")
    text = f"{record['vs_best']:+.2f} ± {record['vs_best_ci95']:.2f}"
    return f"{text} {mark(TIED_MARK)}" if verdict == "tied" else text


def _vs_best(r: Mapping[str, Any], c: Cell) -> str | None:
    verdict = r.get("vs_best_verdict")
    if verdict is None:
        return None
    if c.style is LATEX:
        return (
            "best" if verdict == "best" else f"${r['vs_best']:+.2f} \\pm {r['vs_best_ci95']:.2f}$"
        )
    if c.style is RICH:
        return versus_best_text(r, lambda text: f"[{BEST}]{text}[/]")
    return versus_best_text(r)


def _tuning_text(make: Callable[[Mapping[str, Any]], str]) -> Text:
    def text(r: Mapping[str, Any], c: Cell) -> str | None:
        made = make(r)
        return None if made == MISSING else c.style.escape(made) if c.style is LATEX else made

    return text


def _runs(r: Mapping[str, Any], c: Cell) -> str:
    diverged, failed = (
        c.style.alarm(str(r[k])) if r[k] else str(r[k]) for k in ("diverged", "failed")
    )
    return f"{r['completed']}/{diverged}/{failed}"


def _number(name: str, digits: int) -> Text:
    return lambda r, c: None if r.get(name) is None else f"{r[name]:.{digits}f}"


def _plain(name: str) -> Text:
    return lambda r, c: None if r.get(name) in (None, "") else c.style.escape(str(r[name]))


def _unit(name: str, make: Callable[[float], str]) -> Text:
    """A duration or memory with its unit; LaTeX gives the number in its header's unit."""
    return lambda r, c: (
        None if r.get(name) is None else fixed(r[name], 0) if c.style is LATEX else make(r[name])
    )


def _steps(r: Mapping[str, Any], c: Cell) -> str | None:
    if r.get("steps_90") is None and r.get("steps_95") is None:
        return None
    return "/".join(fixed(r.get(k), 0, c.style.missing) for k in ("steps_90", "steps_95"))


def _reference(r: Mapping[str, Any], c: Cell) -> str | None:
    if c.style is RICH:
        return reference_lines(c.first_run, r.get("test_acc"), r.get("test_ci95"))
    if r.get("ref_acc") is None:
        return None
    pm = f" ± {r['ref_pm']:g}" if r.get("ref_pm") is not None else ""
    return c.style.escape(f"{r['ref_acc']:g}{pm} ({r.get('ref_source') or '?'})")


def reference_lines(row: Mapping[str, Any], acc: float | None, ci: float | None) -> str:
    """Every reference of a row, one line each: ``82.7 T2: within``; a reference whose
    protocol differs is marked ``≠`` and dimmed, without a verdict (context, not a
    target); ``n/c, CI ±9.0 wider than ±5``: not comparable, the interval is too wide."""
    lines = []
    for m in refs.references_for(row):
        ref = m.reference
        pm = f"±{ref.pm:g}" if ref.pm is not None else ""
        text = rich_escape(f"{ref.value:g}{pm} {ref.short or ref.source}")
        if not m.same_protocol:  # ≠ says it all: context, no verdict
            lines.append(f"[dim]≠ {text}[/]")
            continue
        verdict = refs.match_verdict(m, acc, ci) or MISSING
        lines.append(f"{text}: {verdict.replace('not comparable: interval', 'n/c, CI')}")
    return "\n".join(lines) or MISSING


# ---------------------------------------------------------------- notes


def _test_acc_latex(records: Sequence[Mapping[str, Any]]) -> str:
    settings = {str(r["setting"]) for r in records}
    where = "" if len(settings) != 1 else f", {latex_escape(next(iter(settings)))}"
    note = (
        f"Test accuracy (\\%) on the fixed test tasks{where}: mean over the completed seeds "
        "$\\pm$ its 95\\% interval (over the test tasks for one seed, else over the seeds)"
    )
    if any(r.get("vs_best_verdict") for r in records):
        note += (
            "; bold: the best of its setting; $^\\star$: not significantly worse than the best "
            f"(over test tasks and seeds, {latex_escape(method_note(records) or '')}; "
            "Holm-adjusted $p \\geq 0.05$)"
        )
    return note


def _vs_best_markdown(records: Sequence[Mapping[str, Any]]) -> str | None:
    if not any(r.get("vs_best_verdict") for r in records):
        return None
    return (
        f"Δ best: difference to the best row of the setting (accuracy points) with its "
        f"95% interval over the test tasks and seeds, {method_note(records)}; "
        f"{TIED_MARK}: not significantly worse than the best (Holm-adjusted p ≥ 0.05)."
    )


def _said(text: str) -> Note:
    return lambda records: text


# ---------------------------------------------------------------- the catalogue

_ALL = SHOWN_FORMATS
_DETECTS = (
    "detects (80%): the difference from the best row (accuracy points) that this "
    "comparison, with its own variances and seeds, detects with 80% power at 5%"
)
_HEADING = "as the heading of each setting's table"

SUMMARY: tuple[SummaryColumn, ...] = (
    SummaryColumn(
        "setting", ("setting", "ways", "shots", "preset"), {},
        elsewhere=dict.fromkeys(_ALL, _HEADING),
    ),
    SummaryColumn(
        "solver", ("solver", "options", "source", "config", "differs", "assumptions"),
        {"rich": "Solver", "markdown": "solver", "latex": "Solver"}, _solver, left=True,
        max_width=26, default=_ALL,
    ),
    SummaryColumn(
        "family", ("family",), {"markdown": "family", "latex": "Family"}, _plain("family"),
        left=True, default=("markdown",), elsewhere={"rich": "in the solver column"},
    ),
    SummaryColumn(
        "test_acc", ("test_acc", "test_ci95", "ci_over"),
        {"rich": "Test acc. %\n± 95% CI", "markdown": "test acc. % (95% CI)",
         "latex": "Test acc.\\ (\\%)"},
        _test_acc, best=("test_acc", True), default=_ALL,
        notes={
            "markdown": _said(
                "test acc.: mean over the completed seeds ± its 95% interval (Student-t over "
                "the seeds; over the test tasks when one seed completed); bold: the best of "
                "the setting."
            ),
            "latex": _test_acc_latex,
        },
    ),
    SummaryColumn(
        "vs_best",
        ("vs_best", "vs_best_ci95", "vs_best_p", "vs_best_verdict", "vs_best_method",
         "vs_best_why", "vs_best_se", "vs_best_df"),
        {"rich": "Δ best\n± 95% CI", "markdown": "Δ best (95% CI)", "latex": "$\\Delta$ best"},
        _vs_best, default=_ALL, flat_with=("vs_best_detectable",),
        notes={
            "markdown": _vs_best_markdown,
            "latex": _said(
                "$\\Delta$ best: difference to the best row of the setting with its 95\\% "
                "interval, paired over the test tasks"
            ),
        },
    ),
    SummaryColumn(
        "vs_best_detectable", ("vs_best_detectable",),
        {"rich": "Detects\n(80%)", "markdown": "detects (80%)", "latex": "Detects (80\\%)"},
        _number("vs_best_detectable", 1),
        notes={"markdown": _said(f"{_DETECTS}."), "latex": _said(latex_escape(_DETECTS))},
    ),
    SummaryColumn(
        "default", ("default_acc", "default_ci95"),
        {"rich": "Default %\n± 95% CI", "markdown": "default % (95% CI)",
         "latex": "Default (\\%)"},
        _tuning_text(lambda r: acc_text(r.get("default_acc"), r.get("default_ci95"))),
        default=_ALL, tuning=True,
        notes={"latex": _said(
            "default: the solver's default configuration's test accuracy, same seeds"
        )},
    ),
    SummaryColumn(
        "tuning_gain",
        ("tuning_gain", "tuning_gain_ci95", "tuning_gain_p", "tuning_gain_method",
         "tuning_gain_se", "tuning_gain_df"),
        {"rich": "Tuning gain\n± 95% CI", "markdown": "tuning gain (95% CI)",
         "latex": "Tuning gain"},
        _tuning_text(gain_text), default=_ALL, tuning=True,
        flat_with=("tuned_values",),
        notes={"latex": _said(
            "tuning gain: tuned minus default with its 95\\% interval (* where $p < 0.05$), "
            "seed-paired where the seeds are shared"
        )},
    ),
    SummaryColumn(
        "tuned_values", ("tuned_values",),
        {"rich": "Tuned values", "markdown": "tuned values", "latex": "Tuned values"},
        _plain("tuned_values"), left=True, latex_spec="p{5cm}", max_width=40,
    ),
    SummaryColumn(
        "runs", ("runs", "seeds", "completed", "diverged", "failed"),
        {"rich": "Runs\nok/div/fail", "markdown": "runs", "latex": "Runs"}, _runs,
        default=("rich",), notes={"latex": _said("runs: completed/diverged/failed")},
    ),
    SummaryColumn(
        "ms_per_step", ("ms_per_step",),
        {"rich": "ms/step", "markdown": "ms/step", "latex": "ms/step"},
        _number("ms_per_step", 1), best=("ms_per_step", False), default=_ALL,
        notes={"latex": _said("ms/step: median milliseconds per meta-step")},
    ),
    SummaryColumn(
        "peak_memory_mb", ("peak_memory_mb",),
        {"rich": "Mem.", "markdown": "peak memory", "latex": "Memory (MiB)"},
        _unit("peak_memory_mb", format_memory), best=("peak_memory_mb", False), default=_ALL,
        notes={"latex": _said("memory: peak memory in MiB")},
    ),
    SummaryColumn(
        "val_acc", ("val_acc",), {"rich": "Val. %", "markdown": "val. %", "latex": "Val.\\ (\\%)"},
        _number("val_acc", 2), best=("val_acc", True), default=("rich",),
        notes={"latex": _said("val.: final validation accuracy")},
    ),
    SummaryColumn(
        "test_std", ("test_std",), {"rich": "Std", "markdown": "std", "latex": "Std"},
        _number("test_std", 2), best=("test_std", False), default=("rich",),
        notes={"latex": _said(
            "std: sample standard deviation of the test accuracy across seeds"
        )},
    ),
    SummaryColumn(
        "wall_time_s", ("wall_time_s",),
        {"rich": "Wall", "markdown": "wall per run", "latex": "Wall (s)"},
        _unit("wall_time_s", format_duration), best=("wall_time_s", False),
        default=("rich", "markdown"), notes={"latex": _said("wall: seconds per run")},
    ),
    SummaryColumn(
        "roughness", ("roughness",), {"rich": "Rough.", "markdown": "roughness", "latex": "Rough."},
        _number("roughness", 2), best=("roughness", False), default=("rich",),
        notes={"latex": _said("rough.: roughness of the validation curve, in points")},
    ),
    SummaryColumn(
        "steps", ("steps_90", "steps_95"),
        {"rich": "Steps\n90/95%", "markdown": "steps 90/95%", "latex": "Steps 90/95\\%"},
        _steps, best=("steps_90", False), default=("rich",),
        notes={"latex": _said(
            "steps 90/95\\%: meta-steps to 90\\%/95\\% of the final validation accuracy"
        )},
    ),
    SummaryColumn(
        "meta_steps", ("meta_steps",),
        {"rich": "Meta-\nsteps", "markdown": "meta-steps", "latex": "Meta-steps"},
        _plain("meta_steps"),
    ),
    SummaryColumn(
        "reference",
        ("ref_acc", "ref_pm", "ref_method", "ref_source", "ref_protocol", "vs_ref",
         "other_refs"),
        {"rich": "Reference %", "markdown": "reference %", "latex": "Reference (\\%)"},
        _reference, left=True, max_width=40, default=("rich",),
        notes={"latex": _said("reference: the closest published accuracy")},
    ),
    SummaryColumn(
        "errors", ("errors",), {"markdown": "errors", "latex": "Errors"}, _plain("errors"),
        left=True, latex_spec="p{6cm}",
        elsewhere={"rich": "under each setting's table"},
    ),
)  # fmt: skip
BY_NAME = {c.name: c for c in SUMMARY}
SHOWN_FIRST = ("solver", "family", "test_acc")  # family only where chosen or a default
GROUPS: dict[str, tuple[str, ...]] = {c.name: c.fields for c in SUMMARY}


def column_of(name: str) -> SummaryColumn | None:
    """The column a ``--columns`` name stands for: a column's name or one of its fields."""
    return BY_NAME.get(name) or next((c for c in SUMMARY if name in c.fields), None)


def shown_columns(fmt: str, chosen: Sequence[str] | None, tuning: bool) -> list[SummaryColumn]:
    """The columns ``fmt`` shows, in order: the solver, the family (where shown), the test
    accuracy, then the chosen ones in the order given (else the format's defaults, the
    tuning columns only with ``tuning``). A chosen column the format cannot show is an
    error; one it shows elsewhere (the setting) is shown there."""
    if chosen is None:
        wanted = [c for c in SUMMARY if fmt in c.default and (tuning or not c.tuning)]
    else:
        wanted = []
        for name in chosen:
            column = column_of(name)
            if column is None:
                raise RaybenchError(f"unknown column {name!r}")
            if fmt not in column.headers and fmt not in column.elsewhere:
                raise RaybenchError(
                    f"the {FORMAT_NAMES[fmt]} table cannot show column {name!r} (it shows "
                    f"{', '.join(c.name for c in SUMMARY if fmt in c.headers)})"
                )
            wanted.append(column)
    wanted = [c for c in wanted if fmt in c.headers]
    first = [BY_NAME[n] for n in SHOWN_FIRST if n != "family" or BY_NAME[n] in wanted]
    names = dict.fromkeys(c.name for c in [*first, *wanted])
    return [BY_NAME[n] for n in names]


def table_notes(
    fmt: str, columns: Sequence[SummaryColumn], records: Sequence[Mapping]
) -> list[str]:
    """The notes of the columns shown, in their order."""
    notes = (c.notes[fmt](records) if fmt in c.notes else None for c in columns)
    return [n for n in notes if n]


def flat_names(chosen: Sequence[str] | None, all_names: Sequence[str]) -> list[str]:
    """The record fields the plain formats write: all of them by default, else the
    setting's, solver's, family's and test accuracy's fields, then each chosen column's
    (with the columns it is written with), or the single field chosen."""
    if chosen is None:
        return list(all_names)
    solver = BY_NAME["solver"].fields  # the family right after the solver's name
    first = [
        *BY_NAME["setting"].fields,
        solver[0],
        *BY_NAME["family"].fields,
        *solver[1:],
        *BY_NAME["test_acc"].fields,
    ]
    wanted = [n for n in first if n in all_names]
    for name in chosen:
        column = BY_NAME.get(name)
        if column is None:
            fields: tuple[str, ...] = (name,)
        else:
            withs = [BY_NAME[w].fields for w in column.flat_with]
            fields = tuple(f for f in all_names if f in column.fields or any(f in w for w in withs))
        wanted += [f for f in fields if f in all_names and f not in wanted]
    return wanted
