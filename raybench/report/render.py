"""An experiment's report and comparisons, from its store alone: in a terminal (fitted to
its width) or as Markdown, CSV, JSON and LaTeX text. ``raybench report``/``compare`` print
what these give; ``raybench.api.report`` returns the text."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from raybench.errors import ParameterError, RaybenchError

if TYPE_CHECKING:
    from raybench.results import ExperimentStore


def check_report_options(
    fmt: str, compact: bool, table: str | None, output: Path | None = None
) -> None:
    """The report's options, checked before anything is read."""
    from raybench.report import flat, measurement_records

    if fmt not in flat.FORMATS:
        raise ParameterError(
            "unknown {fmt} {given!r}: expected {known}", given=fmt, known=", ".join(flat.FORMATS)
        )
    if compact and fmt != "markdown":
        raise ParameterError("{compact} is a Markdown layout: use it with {fmt} markdown")
    if table is not None and table not in measurement_records.TABLE_NAMES:
        raise ParameterError(
            "unknown {table} {given!r}: expected {known}",
            given=table,
            known=", ".join(measurement_records.TABLE_NAMES),
        )
    if output is not None and not output.parent.is_dir():
        raise RaybenchError(
            f"cannot write the report to {output}: folder {output.parent} does not exist"
        )


def report(
    store: ExperimentStore,
    console: Console,
    fmt: str = "rich",
    output: Path | None = None,
    show_runs: bool = False,
    columns: str | None = None,
    table: str | None = None,
    compact: bool = False,
    defaults: bool = False,
) -> None:
    """The experiment's tables: the aggregated one (stored as ``summary.parquet`` each
    time), the per-run rows (``show_runs``) and the stored studies (bench, scaling,
    fidelity), as Rich tables that fit ``console``, or as Markdown/CSV/JSON/LaTeX to
    stdout or ``output``; ``table`` picks one, ``columns`` the summary's columns;
    ``compact`` Markdown shows one column per group, as the terminal does; ``defaults``
    shows a sweep's default configurations instead of its tuned ones. The caller checks
    the options first (:func:`check_report_options`), before it looks for the store."""
    wanted, summary, chosen = _prepare(store, fmt, show_runs, columns, table, defaults)
    if fmt == "rich":
        _report_rich(store, wanted, summary, console, output, chosen)
        return
    text = _report_flat(store, wanted, summary, fmt, chosen, compact)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RaybenchError(f"cannot write the report to {output}: {exc.strerror}") from None


def report_text(
    store: ExperimentStore,
    fmt: str = "markdown",
    *,
    show_runs: bool = False,
    columns: str | None = None,
    table: str | None = None,
    compact: bool = False,
    defaults: bool = False,
    width: int | None = None,
) -> str:
    """What :func:`report` prints, as text: ``rich`` tables drawn ``width`` characters wide
    (default ``$COLUMNS`` or 160) without colour, the other formats as they are written."""
    check_report_options(fmt, compact, table)
    wanted, summary, chosen = _prepare(store, fmt, show_runs, columns, table, defaults)
    if fmt == "rich":
        buffer = io.StringIO()
        target = Console(
            file=buffer, width=width or report_width(), color_system=None, highlight=False
        )
        _report_rich(store, wanted, summary, target, None, chosen)
        return buffer.getvalue()
    return _report_flat(store, wanted, summary, fmt, chosen, compact)


def _prepare(
    store: ExperimentStore,
    fmt: str,
    show_runs: bool,
    columns: str | None,
    table: str | None,
    defaults: bool,
) -> tuple[list[str], list[dict], list[str] | None]:
    """The tables to show, the summary's records (stored as ``summary.parquet``) and the
    columns chosen; the store's caveats are said on the way."""
    from raybench.report.caveats import warn_code_version, warn_missing
    from raybench.report.columns import RUN_GROUPS, SUMMARY_GROUPS, parse_columns
    from raybench.report.experiment import summary_records
    from raybench.report.measurement_records import stored_tables
    from raybench.report.records import summary_arrow
    from raybench.results.store import write_table

    runs = store.read("runs")
    warn_missing(store, runs)
    warn_code_version(store, runs)
    stored = stored_tables(store)
    if not stored:
        raise RaybenchError(f"experiment {store.root} has no finished runs or studies yet")
    if table is not None and table not in stored:
        raise RaybenchError(
            f"experiment {store.root} has no {table} table (it has {', '.join(stored)})"
        )
    summary: list[dict] = []
    if "summary" in stored:  # derived from the store every time, never edited by hand
        summary = summary_records(store, defaults=defaults)
        try:
            write_table(store.root / "summary.parquet", summary_arrow(summary))
        except OSError as exc:  # a read-only store still reports
            print(f"raybench: summary.parquet not stored: {exc}", file=sys.stderr)
    wanted = _report_tables(stored, fmt, table, show_runs)
    chosen = None
    if columns and wanted[0] in ("summary", "runs"):
        chosen = parse_columns(columns, RUN_GROUPS if wanted == ["runs"] else SUMMARY_GROUPS)
    elif columns:  # a study's own columns, by their stored names
        chosen = [c.strip() for c in columns.split(",") if c.strip()]
    return wanted, summary, chosen


def _report_tables(stored: list[str], fmt: str, table: str | None, show_runs: bool) -> list[str]:
    """Which tables to write: the one asked for; else the summary (per-run rows with
    ``--runs``) and the studies; CSV and JSON hold one table, so there one must be chosen
    when the experiment has several."""
    if table is not None:
        return [table]
    if show_runs and fmt != "rich":
        return ["runs"]
    main = ["summary"] if "summary" in stored else []
    if show_runs and fmt == "rich":
        main.append("runs")
    studies = [t for t in stored if t in ("bench", "scaling", "fidelity")]
    candidates = main + studies or stored[:1]  # a sweep without final runs: its trials
    if fmt in ("csv", "json") and not main and len(candidates) > 1:
        raise ParameterError(
            "{fmt} {given} writes one table and this experiment has {stored}: choose one "
            "with {table}",
            given=fmt,
            stored=", ".join(stored),
        )
    return main[:1] if fmt in ("csv", "json") and main else candidates


def _report_rich(
    store: ExperimentStore,
    wanted: list[str],
    summary: list[dict],
    console: Console,
    output: Path | None,
    chosen: list[str] | None,
) -> None:
    from raybench.report import tables
    from raybench.report.experiment import protocol_lines
    from raybench.report.measurement_records import STUDY_RECORDS, bench_tables
    from raybench.report.measurements import bench_rich, fidelity_tables, scaling_renderables

    with _printing_to(output, console) as target:
        title = escape(f"raybench: {store.name} ({store.root})")
        runs = store.read("runs")
        width = target.width
        for name in wanted:
            if name == "summary":
                for table in tables.summary_tables(
                    summary,
                    runs,
                    title=title,
                    width=width,
                    columns=chosen,
                    tuning_protocol=protocol_lines(store),
                ):
                    target.print(table)
            elif name == "runs":
                curves = store.read("curves")
                target.print(
                    tables.runs_table(
                        runs, title=f"{title}, per run", curves=curves, width=width,
                        columns=chosen if wanted == ["runs"] else None,
                    )
                )  # fmt: skip
            elif name == "fidelity":
                for table in fidelity_tables(store.read("fidelity")):
                    target.print(table)
            elif name == "scaling":
                for renderable in scaling_renderables(store.read("scaling")):
                    target.print(renderable)
            elif name == "bench":
                for _, bench in bench_tables(store):
                    target.print(bench_rich(bench))
            else:  # a sweep's trials: the flat rows, as they are stored
                rows, names = STUDY_RECORDS[name](store)
                target.print(tables.records_table(f"{name} — {title}", rows, names, width))


def _report_flat(
    store: ExperimentStore,
    wanted: list[str],
    summary: list[dict],
    fmt: str,
    chosen: list[str] | None,
    compact: bool = False,
) -> str:
    from raybench.report import flat
    from raybench.report.columns import RUN_GROUPS, record_names
    from raybench.report.experiment import protocol_lines
    from raybench.report.measurement_records import STUDY_LATEX_COLUMNS, STUDY_RECORDS
    from raybench.report.records import (
        FLAT_NOTES,
        RUN_RECORD_SCHEMA,
        SUMMARY_SCHEMA,
        caption_lines,
        run_records,
    )
    from raybench.report.summary_columns import flat_names
    from raybench.report.tuning import TUNING_NOTE, has_tuning

    runs = store.read("runs")
    parts = []
    for name in wanted:
        captions: list[str] = []
        if name == "summary":
            tuning = [f"tuning protocol: {line}" for line in protocol_lines(store)]
            captions = caption_lines(runs) + tuning + ([TUNING_NOTE] if has_tuning(summary) else [])
            if fmt == "latex":
                label = f"tab:raybench-{flat.latex_label(store.name)}"
                parts.append(flat.summary_latex(summary, chosen, captions, label=label))
                continue
            if compact:  # the protocol lines; the column notes are the flat columns'
                protocol = [c for c in captions if c not in FLAT_NOTES]
                parts.append(flat.summary_markdown_compact(summary, chosen, protocol))
                continue
            rows, names = summary, flat_names(chosen, SUMMARY_SCHEMA.names)
        elif name == "runs":
            captions = caption_lines(runs)
            rows = run_records(runs, store.read("curves"))
            names = record_names(chosen, RUN_RECORD_SCHEMA.names, RUN_GROUPS)
        else:
            rows, names = STUDY_RECORDS[name](store)
            if chosen and wanted == [name]:
                unknown = [c for c in chosen if c not in names]
                if unknown:
                    raise RaybenchError(
                        f"unknown column {unknown[0]!r} in the {name} table "
                        f"(columns: {', '.join(names)})"
                    )
                names = chosen
            elif fmt == "latex":
                names = [n for n in STUDY_LATEX_COLUMNS[name] if n in names]
        if fmt == "latex":
            label = f"tab:raybench-{flat.latex_label(store.name)}-{name}"
            caption = f"raybench {name} of experiment {store.name}"
            parts.append(flat.to_latex(rows, names, captions, caption=caption, label=label))
        else:
            text = flat.render_flat(rows, fmt, names, captions)
            parts.append(f"## {name}\n\n{text}" if len(wanted) > 1 else text)
    return "\n".join(parts)


def report_width() -> int:
    """The width of a report written to a file or a pipe: $COLUMNS, else ``LOG_WIDTH``."""
    import os

    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else LOG_WIDTH


LOG_WIDTH = 160  # a log or a file has no width; this keeps a report's table whole


def compare(
    store: ExperimentStore,
    a: str,
    b: str,
    console: Console,
    fmt: str = "rich",
    output: Path | None = None,
    detect: float | None = None,
) -> None:
    """``raybench compare``: the comparison of A and B per setting, in full."""
    import json

    from raybench.report.comparison import comparison_record
    from raybench.report.experiment import paired_results
    from raybench.report.tables import comparison_table

    results = paired_results(store, a, b)
    if all(r.comparison is None for r in results):
        raise RaybenchError(
            f"nothing to compare: {'; '.join(f'{r.setting}: {r.note}' for r in results)}"
        )
    if fmt == "json":
        text = json.dumps(
            [comparison_record(r, detect) for r in results], indent=2, ensure_ascii=False
        )
        if output is None:
            sys.stdout.write(text + "\n")
        else:
            output.write_text(text + "\n", encoding="utf-8")
        return
    with _printing_to(output, console) as target:
        for result in results:
            target.print(comparison_table(result, detect))


@contextlib.contextmanager
def _printing_to(output: Path | None, console: Console) -> Iterator[Console]:
    """``console``, or a plain console writing ``output`` (as wide as a log) and closed after."""
    if output is None:
        yield console
        return
    try:
        handle = output.open("w", encoding="utf-8")
    except OSError as exc:
        raise RaybenchError(f"cannot write the report to {output}: {exc.strerror}") from None
    with handle:
        yield Console(file=handle, width=report_width(), color_system=None, highlight=False)
