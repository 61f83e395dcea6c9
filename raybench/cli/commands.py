"""What the CLI commands do, kept apart from their option declarations in ``__init__``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from raybench.config import PRESETS, RUN_BOUNDS, RunConfig, did_you_mean, parse_assignments
from raybench.errors import RaybenchError


def resolve_solvers(spec: str) -> list[str]:
    """``all`` or a comma-separated list, each name checked against the registry."""
    from raybench.solvers import SOLVERS, solver_class

    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise RaybenchError("--solvers is empty: give solver names or 'all'")
    if names == ["all"]:
        return list(SOLVERS)
    for name in names:
        solver_class(name)
    return list(dict.fromkeys(names))


def build_configs(
    solvers: Sequence[str],
    preset: str,
    overrides: dict[str, str],
    seeds: Sequence[int],
) -> list[RunConfig]:
    """Every (solver, seed) config, all validated before anything starts."""
    from raybench.solvers import make_config

    return [
        make_config(solver, preset, {**overrides, "seed": seed})
        for solver in solvers
        for seed in seeds
    ]


def run(
    *,
    solvers: str,
    preset: str,
    settings: list[str],
    seeds: int,
    first_seed: int,
    steps: int | None,
    device: str | None,
    experiment: str | None,
    out: Path,
    data_dir: Path | None,
    rerun: bool,
    show_report: bool,
    console: Console,
) -> None:
    from raybench.data import load_omniglot
    from raybench.execution.inline import run_inline
    from raybench.results import ExperimentStore

    overrides = parse_assignments(settings)
    if steps is not None:
        overrides["meta_steps"] = str(steps)
    if device is not None:
        overrides["device"] = device
    if preset not in PRESETS:
        raise RaybenchError(f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)}")
    names = resolve_solvers(solvers)
    configs = build_configs(names, preset, overrides, range(first_seed, first_seed + seeds))
    name = experiment or preset
    if not name or "/" in name or name.startswith("."):
        raise RaybenchError(f"invalid experiment name {name!r}: use a plain folder name")
    store = ExperimentStore(out / name)
    data = load_omniglot(data_dir)
    console.print(
        f"[bold]raybench[/] {len(configs)} run(s): {', '.join(names)} x {seeds} seed(s), "
        f"preset {preset}, experiment {store.root}"
    )
    summaries = run_inline(configs, data, store, console, rerun=rerun)
    if show_report:
        report(str(store.root), out, console)
    failed = [s for s in summaries if s.status == "failed"]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed; their rows say why[/]")
        raise typer.Exit(1)


def report(experiment: str | None, out: Path, console: Console) -> None:
    from raybench.report.tables import runs_table
    from raybench.results import open_experiment

    if experiment is None:
        found = [p for p in out.glob("*") if (p / "runs").is_dir()] if out.is_dir() else []
        if not found:
            raise RaybenchError(f"no experiments under {out}: run `raybench run` first")
        experiment = str(max(found, key=lambda p: (p / "runs").stat().st_mtime))
    store = open_experiment(experiment, out)
    runs = store.read("runs")
    if runs.num_rows == 0:
        raise RaybenchError(f"experiment {store.root} has no finished runs yet")
    console.print(runs_table(runs, title=f"raybench: {store.name} ({store.root})"))


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
    if preset not in PRESETS:
        raise RaybenchError(f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)}")
    values = {**{f.name: f.default for f in dataclasses.fields(RunConfig)}, **PRESETS[preset]}
    table = Table(title=f"Settings (preset {preset})", title_justify="left", header_style="bold")
    for column in ("Key", "Value", "Allowed", "Meaning"):
        table.add_column(column)
    for key, bound in RUN_BOUNDS.items():
        table.add_row(key, str(values[key]), bound.describe(), bound.help)
    console.print(table)
    console.print("Presets: " + ", ".join(PRESETS))
