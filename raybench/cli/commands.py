"""What the CLI commands do, kept apart from their option declarations in ``__init__``."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from raybench.cli.reports import report
from raybench.config import (
    PRESETS,
    RUN_BOUNDS,
    RunConfig,
    check_preset,
    parse_assignments,
)
from raybench.errors import RaybenchError
from raybench.execution.options import DEFAULTS as RUN_DEFAULTS
from raybench.planning import (
    default_seeds,
    experiment_store,
    resolve_solvers,
    resume_store,
)

if TYPE_CHECKING:
    from raybench.execution import ExecutionOptions
    from raybench.results import ExperimentStore
    from raybench.search.protocol import Protocol
    from raybench.search.sweep import SweepOptions
    from raybench.trackers import TrackerSpec


def run(
    *,
    solvers: str,
    preset: str,
    matrix: bool,
    settings: list[str],
    config_files: list[Path],
    seeds: int | None,
    first_seed: int,
    steps: int | None,
    device: str | None,
    experiment: str | None,
    out: Path,
    data_dir: Path | None,
    execution: ExecutionOptions,
    resume: str | None,
    show_report: bool,
    console: Console,
    force: bool = False,
) -> None:
    """``raybench run``: :func:`raybench.api.run`, then the report and the exit code."""
    from raybench import api

    exp = api.run(
        solvers,
        preset,
        settings=parse_assignments(settings),
        seeds=seeds,
        first_seed=first_seed,
        steps=steps,
        device=device,
        config_files=config_files,
        matrix=matrix,
        experiment=experiment,
        out=out,
        data_dir=data_dir,
        backend=execution.backend,
        address=execution.address,
        gpus_per_run=execution.gpus_per_run,
        cpus_per_run=execution.cpus_per_run,
        max_concurrent=execution.max_concurrent,
        max_retries=execution.max_retries,
        dashboard=execution.dashboard,
        rerun=execution.rerun,
        resume=resume,
        log_every=execution.log_every,
        connect_timeout=execution.connect_timeout,
        tracker=execution.tracker.names if execution.tracker else None,
        tracker_uri=execution.tracker.uri if execution.tracker else None,
        console=console,
        force=force,
    )
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
    from raybench.measurements.bench import bench_rich

    console.print(bench_rich(api.bench(console=console, **given).table))


def bench_ab(*, console: Console, **given: Any) -> None:
    """``raybench bench --ab``: :func:`raybench.api.bench_ab`, then its table."""
    from raybench import api
    from raybench.measurements.ab import ab_rich

    console.print(ab_rich(api.bench_ab(console=console, **given)))


@dataclasses.dataclass(frozen=True)
class ProtocolFlags:
    """The protocol's rules as given on the command line (None: not given)."""

    trials: int | None = None
    steps: int | None = None
    seeds: int | None = None
    final_steps: int | None = None
    search_seed: int | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


PROTOCOL_DEFAULTS = {"trials": 32, "steps": 500, "search_seed": 0}


def protocol_values(flags: ProtocolFlags, protocol_file: Path | None) -> dict[str, Any]:
    """The rules asked for: a protocol file's, and the flags (which must agree with it)."""
    from raybench.search.protocol import read_file, seeds_of

    values = {} if protocol_file is None else read_file(protocol_file)
    for key, value in flags.given().items():
        if key in values:
            same = (
                seeds_of(values[key]) == seeds_of(value) if key == "seeds" else values[key] == value
            )
            if not same:
                raise RaybenchError(
                    f"--{key.replace('_', '-')} {value} disagrees with {protocol_file}'s "
                    f"{key} {values[key]}; give one of them"
                )
        values[key] = value
    return values


def resumed_protocol(
    store: ExperimentStore, asked: dict[str, Any], spaces: list[Any], unequal: bool
) -> Protocol:
    """The protocol an experiment was started with; what the resumed command asked for
    must agree with it (a changed protocol is refused in one line)."""
    from raybench.search.protocol import differences, from_json, seeds_of

    path = store.root / "protocol.json"
    if not path.is_file():
        raise RaybenchError(
            f"{store.root} has no protocol.json (a sweep of an older raybench); its trials "
            "and runs are kept, but it cannot be resumed: start a new sweep"
        )
    stored = from_json(store.read_manifest("protocol"))
    values = {k: (seeds_of(v) if k == "seeds" else v) for k, v in asked.items()}
    if "trials" in values and not isinstance(values["trials"], dict):
        values["trials"] = dict.fromkeys(stored.solvers, values["trials"])
    if unequal:
        values["unequal_budgets"] = True
    values["spaces"] = {space.solver: space.describe() for space in spaces}
    asked_protocol = replace(stored, **values)
    changed = differences(stored, asked_protocol)
    if changed:
        raise RaybenchError(
            f"--resume continues {store.name}'s protocol, and this one differs ("
            + "; ".join(changed)
            + "): resume without the change, or start a new experiment"
        )
    return stored


def sweep(
    *,
    solvers: str,
    preset: str,
    settings: list[str],
    options: SweepOptions,
    rules: ProtocolFlags,
    protocol_file: Path | None,
    unequal_budgets: bool,
    final: bool,
    spaces: Path | None,
    experiment: str | None,
    out: Path,
    data_dir: Path | None,
    address: str | None,
    dashboard: bool,
    resume: str | None,
    show_report: bool,
    console: Console,
    log_every: float = RUN_DEFAULTS.log_every,
    connect_timeout: float = RUN_DEFAULTS.connect_timeout,
    device: str | None = None,
    tracker: TrackerSpec | None = None,
    force: bool = False,
) -> None:
    """``raybench sweep``: the protocol from flags or a file (or the resumed experiment's),
    the search, then the final runs of every solver's default and selected configuration
    with the protocol's seeds."""
    from raybench.execution.ray_backend import ray_session
    from raybench.results.store import ensure_writable
    from raybench.search.protocol import make_protocol
    from raybench.search.sweep import SweepOptions, check_spaces, run_sweep
    from raybench.solvers import make_config

    asked = protocol_values(rules, protocol_file)
    if resume is not None:
        store = resume_store(resume, out)
        plan = store.read_manifest("sweep")
        try:
            known = set(SweepOptions.__dataclass_fields__)
            stored_options = {k: v for k, v in plan["options"].items() if k in known}
            options = replace(SweepOptions(**stored_options), resume=True)
            final = plan["final"]
            spaces = Path(plan["spaces"]) if plan.get("spaces") else None
            names = plan["solvers"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise RaybenchError(
                f"{store.root / 'sweep.json'} is damaged (bad or missing {exc}); move it away"
            ) from None
        protocol = resumed_protocol(store, asked, check_spaces(names, spaces), unequal_budgets)
    else:
        check_preset(preset)
        names = resolve_solvers(solvers)
        overrides = parse_assignments(settings)
        if device is not None:
            overrides["device"] = device
        for name in names:  # every setting checked before anything starts
            make_config(name, preset, overrides)
        spaces = spaces if spaces is not None else default_spaces()
        protocol = make_protocol(
            solvers=names,
            preset=preset,
            overrides=overrides,
            spaces=check_spaces(names, spaces),
            trials=asked.get("trials", PROTOCOL_DEFAULTS["trials"]),
            steps=asked.get("steps", PROTOCOL_DEFAULTS["steps"]),
            seeds=asked.get("seeds", default_seeds([preset])),
            final_steps=asked.get("final_steps"),
            search_seed=asked.get("search_seed", PROTOCOL_DEFAULTS["search_seed"]),
            grace=asked.get("grace"),
            reduction_factor=asked.get("reduction_factor", 3),
            unequal_budgets=unequal_budgets,
        )
        for space in check_spaces(names, spaces):  # the default must be a trial
            space.default_point(
                make_config(space.solver, preset, {**overrides, "meta_steps": protocol.steps})
            )
        store = experiment_store(experiment or "sweep", out, force)
        manifest = {
            "solvers": names,
            "options": asdict(options),
            "final": final,
            "spaces": str(spaces.resolve()) if spaces else None,
        }
    ensure_writable(store.root)
    console.print(
        f"[bold]raybench sweep[/] {', '.join(names)}; experiment {store.root}\n"
        + "\n".join(f"  {line}" for line in protocol.lines()),
        soft_wrap=True,
    )
    with ray_session(address, dashboard, connect_timeout):
        if resume is None:  # recorded once the sweep is under way
            store.write_manifest("protocol", protocol.to_json())
            store.write_manifest("sweep", manifest)
        run_sweep(
            protocol,
            store,
            options,
            console,
            spaces_dir=spaces,
            data_dir=data_dir,
            trackers=tracker,
            log_every=log_every,
        )
        if final:
            final_runs(
                protocol, store, options, console, data_dir, log_every, connect_timeout, tracker
            )
    if show_report and store.files("runs"):
        report(str(store.root), out, console)


def final_runs(
    protocol: Protocol,
    store: ExperimentStore,
    options: SweepOptions,
    console: Console,
    data_dir: Path | None,
    log_every: float,
    connect_timeout: float,
    tracker: TrackerSpec | None,
) -> None:
    """Every solver's default and selected configuration, with the protocol's seeds (the
    same for both: common random numbers) and final length; one configuration where the
    default was selected."""
    from raybench.execution import ExecutionOptions, execute
    from raybench.search.finals import final_plan

    plan = final_plan(protocol, store.root / "best")
    for name in plan.without_tuned:
        console.print(f"[red]{name}: no completed trial: its default alone is run[/]")
    execution = ExecutionOptions(
        backend="ray",
        max_concurrent=options.max_concurrent,
        max_retries=options.max_retries,
        gpus_per_run=options.gpus_per_trial,
        cpus_per_run=options.cpus_per_trial,
        source="tuned",
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker,
    )
    execute(plan.configs, store, console, execution, data_dir, sources=plan.sources)


def default_spaces() -> Path:
    """``./search_spaces`` when run from a checkout, else the one beside the package."""
    from raybench.search.spaces import DEFAULT_DIR

    local = Path("search_spaces")
    return local if local.is_dir() else DEFAULT_DIR


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
    from raybench.report.plots import Output

    figures = api.plot(experiment, out, directory=directory, fmt=fmt, dpi=dpi)
    width, height = Output(fmt, dpi).pixels
    size = f"{width}x{height} px" if fmt == "png" else f"{fmt.upper()}, 12x6 in"
    console.print(
        f"[bold]raybench plot[/] {figures.experiment}: {len(figures.written)} figure(s), "
        f"{size}, in {figures.directory}"
    )
    for path in figures.written:
        console.print(f"  {path.name}")
    for reason in figures.skipped:
        console.print(f"  [dim]skipped {reason}[/]")


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
    table = Table(title=f"Settings (preset {preset})", title_justify="left", header_style="bold")
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
    console.print(f"stored in {measured.experiment.root / 'fidelity'}")


def scaling(*, console: Console, **given: Any) -> None:
    """``raybench scaling``: :func:`raybench.api.scaling`, then its tables."""
    from raybench import api
    from raybench.report.measurements import scaling_renderables

    measured = api.scaling(console=console, **given)
    for rendered in scaling_renderables(measured.table):
        console.print(rendered)
    console.print(f"stored in {measured.experiment.root / 'scaling'}")
