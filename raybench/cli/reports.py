"""``raybench report`` and ``raybench compare``: the experiment named on the command line,
rendered by :mod:`raybench.report.render` (the API's :func:`raybench.api.report` returns the
same text)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def report(
    experiment: str | None,
    out: Path,
    console: Console,
    fmt: str = "rich",
    output: Path | None = None,
    show_runs: bool = False,
    columns: str | None = None,
    table: str | None = None,
    compact: bool = False,
    defaults: bool = False,
) -> None:
    """The report of ``experiment`` (name under ``out``, folder, or the newest), options
    checked before the store is looked for."""
    from raybench import api
    from raybench.report import render

    render.check_report_options(fmt, compact, table, output)
    store = api.open_store(experiment, out)
    render.report(store, console, fmt, output, show_runs, columns, table, compact, defaults)


def compare(
    experiment: str,
    a: str,
    b: str,
    out: Path,
    console: Console,
    fmt: str = "rich",
    output: Path | None = None,
    detect: float | None = None,
) -> None:
    """``raybench compare``: the comparison of A and B per setting, in full."""
    from raybench import api
    from raybench.report import render

    render.compare(api.open_store(experiment, out), a, b, console, fmt, output, detect)
