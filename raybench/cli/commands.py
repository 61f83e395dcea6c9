"""What the CLI commands do, kept apart from their option declarations in ``__init__``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from raybench.cli.reports import report
from raybench.config import PRESETS, RUN_BOUNDS, RunConfig, check_preset


def run(*, show_report: bool, out: Path, console: Console, **given: Any) -> None:
    """``raybench run``: :func:`raybench.api.run`, then the report and the exit code."""
    from raybench import api

    exp = api.run(out=out, console=console, **given)
    if show_report and exp.store.files("runs"):
        report(str(exp.root), out, console)
    failed = [s for s in exp.outcomes if s.status == "failed"]
    unstored = [s for s in exp.outcomes if s.status == "unstored"]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed; their rows say why[/]")
    if failed or unstored:
        raise typer.Exit(1)


def bench(*, console: Console, **given: Any) -> None:
    """``raybench bench``: :func:`raybench.api.bench`, then its table."""
    from raybench import api
    from raybench.report.measurements import bench_rich

    console.print(bench_rich(api.bench(console=console, **given).table))


def bench_ab(*, console: Console, **given: Any) -> None:
    """``raybench bench --ab``: :func:`raybench.api.bench_ab`, then its table."""
    from raybench import api
    from raybench.report.measurements import ab_rich

    console.print(ab_rich(api.bench_ab(console=console, **given)))


def sweep(*, show_report: bool, out: Path, console: Console, **given: Any) -> None:
    """``raybench sweep``: :func:`raybench.api.sweep`, then the report."""
    from raybench import api

    tuned = api.sweep(out=out, console=console, **given)
    if show_report and tuned.experiment.store.files("runs"):
        report(str(tuned.experiment.root), out, console)


def plot(
    experiment: str | None,
    directory: Path | None,
    out: Path,
    console: Console,
    *,
    fmt: str = "png",
    dpi: int = 100,
) -> None:
    """``raybench plot``: :func:`raybench.api.plot`, and what it drew."""
    from raybench import api

    figures = api.plot(experiment, out, directory=directory, fmt=fmt, dpi=dpi)
    console.print(
        f"[bold]raybench plot[/] {escape(str(figures.experiment))}: {len(figures.written)} "
        f"figure(s), {escape(str(figures.size))}, in {escape(str(figures.directory))}"
    )
    for path in figures.written:
        console.print(f"  {escape(path.name)}")
    for reason in figures.skipped:
        console.print(f"  [dim]skipped {escape(str(reason))}[/]")


def list_solvers(console: Console) -> None:
    from raybench.solvers import SOLVERS
    from raybench.solvers.base import option_bounds

    bounds = option_bounds()
    table = Table(title="Registered solvers", title_justify="left", header_style="bold")
    for column in ("Solver", "Family", "Options (SOLVER.KNOB=VALUE)", "What"):
        table.add_column(column)
    for name, cls in SOLVERS.items():
        defaults = dataclasses.asdict(cls.Options())
        options = "\n".join(
            f"{knob}={defaults[knob]} ({b.describe()})" for knob, b in bounds[name].items()
        )
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        table.add_row(name, cls.family, options or "—", doc)
    console.print(table)


def list_settings(preset: str, console: Console) -> None:
    check_preset(preset)
    values = {**{f.name: f.default for f in dataclasses.fields(RunConfig)}, **PRESETS[preset]}
    table = Table(
        title=f"Settings (preset {escape(preset)})", title_justify="left", header_style="bold"
    )
    for column in ("Key", "Value", "Allowed", "Meaning"):
        table.add_column(column)
    for key, bound in RUN_BOUNDS.items():
        table.add_row(key, str(values[key]), bound.describe(), bound.help)
    console.print(table)
    console.print("Presets: " + ", ".join(PRESETS))


# -- measurements: meta-gradient fidelity and memory/time scaling ------------------------


def fidelity(*, console: Console, **given: Any) -> None:
    """``raybench fidelity``: :func:`raybench.api.fidelity`, then its tables."""
    from raybench import api
    from raybench.report.measurements import fidelity_tables

    measured = api.fidelity(console=console, **given)
    for rendered in fidelity_tables(measured.table):
        console.print(rendered)
    console.print(f"stored in {escape(str(measured.experiment.root / 'fidelity'))}")


def scaling(*, console: Console, **given: Any) -> None:
    """``raybench scaling``: :func:`raybench.api.scaling`, then its tables."""
    from raybench import api
    from raybench.report.measurements import scaling_renderables

    measured = api.scaling(console=console, **given)
    for rendered in scaling_renderables(measured.table):
        console.print(rendered)
    console.print(f"stored in {escape(str(measured.experiment.root / 'scaling'))}")
