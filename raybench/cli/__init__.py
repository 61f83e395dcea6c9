"""The ``raybench`` command line: Typer commands that wire the package together.

Every user-fixable problem ends as one line on stderr and exit code 2, never a traceback.
The options the commands share, and the conventions they follow, are in
:mod:`raybench.cli.options`.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from raybench.cli.options import (
    API_FLAGS,
    HELP_NAMES,
    AddressOption,
    ConcurrencyOption,
    ConnectTimeoutOption,
    CpusOption,
    DashboardOption,
    DataDirOption,
    DeviceOption,
    ExperimentOption,
    ForceOption,
    GpusOption,
    LogEveryOption,
    MetaStepsOption,
    OutOption,
    PresetOption,
    RetriesOption,
    SeedsOption,
    SettingsOption,
    SolversOption,
    TrackerOption,
    TrackerUriOption,
    backend_option,
    bounds,
    cpus_per_run_option,
    deprecated,
    experiment_option,
    format_option,
    gpus_per_run_option,
    hidden_option,
    output_option,
    preset_option,
    renamed,
    resume_option,
    seed_option,
    seeds_option,
    steps_option,
    tidy_help,
    timed_steps_option,
    warmup_option,
)
from raybench.errors import RaybenchError
from raybench.execution.options import DEFAULTS as RUN_DEFAULTS
from raybench.measurements.defaults import (
    DEFAULT_INNER_STEPS,
    DEFAULT_SWEEPS,
    DEFAULT_TASKS,
    DEFAULT_WARMUP,
)
from raybench.measurements.fidelity_plan import sweeps_text

try:  # typer >= 0.25 carries its own copy of click
    from typer.exceptions import TyperException as UsageProblem
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException as UsageProblem  # type: ignore[assignment]

app = typer.Typer(
    name="raybench",
    help="Benchmark bilevel-optimization solvers for meta-learning on few-shot Omniglot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": HELP_NAMES},
)


def stdout() -> Console:
    """The terminal's width in a terminal. Piped or redirected, $COLUMNS when set, else
    160 columns: a log or a file has no width of its own (Rich would assume 80), and 160
    keeps a report's usual columns in one table per setting while staying readable."""
    console = Console(highlight=False)
    if not console.is_terminal:
        from raybench.report.render import report_width

        console = Console(highlight=False, width=report_width())
    return console


def _print_version(value: bool) -> None:
    if value:
        from raybench import __version__

        print(f"raybench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def _experiment(option: str | None, positional: str | None, command: str) -> str | None:
    """``-e NAME``, or the experiment as the command's first argument (the old spelling)."""
    if positional is None:
        return option
    deprecated(f"`raybench {command} EXPERIMENT`", f"`raybench {command} -e EXPERIMENT`")
    if option is not None and option != positional:
        raise RaybenchError(f"two experiments given ({positional!r} and -e {option!r})")
    return positional


@app.command("run")
def run_command(
    solvers: SolversOption = "all",
    preset: Annotated[
        str,
        preset_option(
            metavar="NAMES",
            help="Starting configuration, or several comma-separated (solvers x presets): "
            "paper (Table 1), quick, smoke, 5w5s, 20w1s, 20w5s, literature-5w1s, ...",
        ),
    ] = "paper",
    matrix: Annotated[
        bool,
        typer.Option(
            "--matrix",
            help="Every solver at every standard setting: --preset paper,5w5s,20w1s,20w5s "
            "(experiment 'matrix').",
        ),
    ] = False,
    settings: SettingsOption = None,
    configs: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="A config file (e.g. a sweep's best/<solver>.yaml) to run instead of "
            "--solvers/--preset; repeatable; the experiment defaults to the files' names. "
            "--set still applies on top.",
        ),
    ] = None,
    seeds: SeedsOption = None,
    seed: Annotated[int, seed_option(**bounds("seed"), metavar="N", help="First seed.")] = 0,
    steps: MetaStepsOption = None,
    device: DeviceOption = None,
    experiment: ExperimentOption = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    backend: Annotated[
        str,
        backend_option(
            metavar="ray|inline",
            help="ray: each run on a Ray actor; inline: one after another here.",
        ),
    ] = RUN_DEFAULTS.backend,
    address: AddressOption = None,
    gpus_per_run: GpusOption = None,
    cpus_per_run: CpusOption = None,
    max_concurrent: ConcurrencyOption = None,
    max_retries: RetriesOption = RUN_DEFAULTS.max_retries,
    dashboard: DashboardOption = False,
    connect_timeout: ConnectTimeoutOption = RUN_DEFAULTS.connect_timeout,
    resume: Annotated[
        str | None,
        resume_option(
            metavar="EXPERIMENT",
            help="Continue an interrupted experiment: finished runs are kept, every "
            "unfinished one (of any earlier command) goes on from its last evaluation point; "
            "--solvers narrows it.",
        ),
    ] = None,
    rerun: Annotated[
        bool,
        typer.Option("--rerun", help="Train runs again from step 0, even if already stored."),
    ] = False,
    report: Annotated[bool, typer.Option(help="Print the report at the end.")] = True,
    log_every: LogEveryOption = RUN_DEFAULTS.log_every,
    tracker: TrackerOption = None,
    tracker_uri: TrackerUriOption = None,
    force: ForceOption = False,
) -> None:
    """Train, evaluate and store each solver (and seed), then print the report."""
    from raybench.cli.commands import run

    run(
        solvers=solvers,
        preset=preset,
        matrix=matrix,
        settings=settings or [],
        config_files=configs or [],
        seeds=seeds,
        first_seed=seed,
        steps=steps,
        device=device,
        experiment=experiment,
        force=force,
        out=out,
        data_dir=data_dir,
        backend=backend,
        address=address,
        gpus_per_run=gpus_per_run,
        cpus_per_run=cpus_per_run or RUN_DEFAULTS.cpus_per_run,
        max_concurrent=max_concurrent,
        max_retries=max_retries,
        dashboard=dashboard,
        rerun=rerun,
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker,
        tracker_uri=tracker_uri,
        resume=resume,
        show_report=report,
        console=stdout(),
    )


@app.command("sweep")
def sweep_command(
    solvers: SolversOption = None,  # all; None: not given, which --resume needs to know
    preset: PresetOption = None,  # paper
    settings: SettingsOption = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            **bounds("trials"),
            metavar="N",
            help="Trials per solver, the default first. [default: 32]",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        steps_option(
            **bounds("steps"), metavar="N", help="Meta-steps of each trial. [default: 500]"
        ),
    ] = None,
    seeds: SeedsOption = None,
    final: Annotated[
        bool,
        typer.Option(
            help="Re-run each solver's default and selected config with the same --seeds "
            "seeds at full length, and test them."
        ),
    ] = True,
    final_steps: Annotated[
        int | None,
        typer.Option(
            "--final-steps",
            **bounds("final_steps"),
            metavar="N",
            help="Meta-steps of the final runs (default: the preset's).",
        ),
    ] = None,
    search_seed: Annotated[
        int | None,
        typer.Option("--search-seed", metavar="N", help="Seed of the TPE sampler. [default: 0]"),
    ] = None,
    protocol: Annotated[
        Path | None,
        typer.Option(
            "--protocol",
            metavar="FILE",
            help="A tuning protocol (YAML or JSON): trials, steps, seeds, final_steps, "
            "search_seed, grace, reduction_factor; a flag given too must agree with it.",
            show_default=False,
        ),
    ] = None,
    unequal_budgets: Annotated[
        bool,
        typer.Option(
            "--unequal-budgets",
            help="Allow solvers unequal trials or trial lengths (recorded in the protocol).",
        ),
    ] = False,
    spaces: Annotated[
        Path | None,
        typer.Option(
            "--spaces",
            metavar="DIR",
            help="Folder of <solver>.yaml search spaces.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = None,
    experiment: ExperimentOption = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    address: AddressOption = None,
    gpus_per_run: Annotated[
        float | None,
        gpus_per_run_option(
            **bounds("gpus_per_run"),
            metavar="FRACTION",
            help="GPU share of each trial and final run. Default: the visible GPUs divided "
            "among the concurrent trials.",
        ),
    ] = None,
    cpus_per_run: Annotated[
        float | None,
        cpus_per_run_option(
            **bounds("cpus_per_run"),
            metavar="N",
            help="CPUs of each trial and final run (its torch threads and the CPUs Ray "
            "reserves for it). Default 1.",
        ),
    ] = None,
    gpus_per_trial: Annotated[
        float | None, hidden_option("--gpus-per-trial", **bounds("gpus_per_run"))
    ] = None,
    cpus_per_trial: Annotated[
        float | None, hidden_option("--cpus-per-trial", **bounds("cpus_per_run"))
    ] = None,
    max_concurrent: ConcurrencyOption = None,
    max_retries: RetriesOption = RUN_DEFAULTS.max_retries,
    dashboard: DashboardOption = False,
    connect_timeout: ConnectTimeoutOption = RUN_DEFAULTS.connect_timeout,
    resume: Annotated[
        str | None,
        resume_option(
            metavar="EXPERIMENT",
            help="Continue an interrupted sweep (its experiment name): finished trials and "
            "solvers are kept, unfinished trials are sampled again.",
        ),
    ] = None,
    report: Annotated[bool, typer.Option(help="Print the report at the end.")] = True,
    log_every: LogEveryOption = RUN_DEFAULTS.log_every,
    tracker: TrackerOption = None,
    tracker_uri: TrackerUriOption = None,
    force: ForceOption = False,
) -> None:
    """Tune every solver under one protocol (Ray Tune + Optuna TPE + ASHA, the default
    configuration first, selection on validation), then train each solver's default and
    selected configuration with the same seeds, test them and report."""
    from raybench.cli.commands import sweep
    from raybench.search.sweep import SweepOptions

    gpus = renamed("--gpus-per-run", gpus_per_run, "--gpus-per-trial", gpus_per_trial, "sweep")
    cpus = renamed("--cpus-per-run", cpus_per_run, "--cpus-per-trial", cpus_per_trial, "sweep")
    options = SweepOptions(
        max_concurrent=max_concurrent,
        gpus_per_trial=gpus,
        cpus_per_trial=cpus or 1.0,
        max_retries=max_retries,
    )
    sweep(
        solvers=solvers,
        preset=preset,
        settings=settings or [],
        options=options,
        trials=trials,
        steps=steps,
        seeds=seeds,
        final_steps=final_steps,
        search_seed=search_seed,
        protocol_file=protocol,
        unequal_budgets=unequal_budgets,
        final=final,
        spaces=spaces,
        device=device,
        experiment=experiment,
        force=force,
        out=out,
        data_dir=data_dir,
        address=address,
        dashboard=dashboard,
        resume=resume,
        show_report=report,
        console=stdout(),
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker,
        tracker_uri=tracker_uri,
    )


@app.command("sensitivity")
def sensitivity_command(
    solver: Annotated[str, typer.Option("--solver", metavar="NAME", help="The solver to study.")],
    param: Annotated[
        str,
        typer.Option(
            "--param",
            metavar="KEY",
            help="The setting to vary: any `raybench settings` key or a solver option.",
        ),
    ],
    values: Annotated[
        str,
        typer.Option(
            "--values", metavar="V1,V2,...", help="Comma-separated values, e.g. 0.001,0.01,0.1."
        ),
    ],
    seeds: SeedsOption = None,
    preset: PresetOption = "paper",
    settings: SettingsOption = None,
    steps: MetaStepsOption = None,
    device: DeviceOption = None,
    experiment: ExperimentOption = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    backend: Annotated[
        str,
        backend_option(metavar="ray|inline", help="ray (default) or inline, as for `run`."),
    ] = "ray",
    address: AddressOption = None,
    gpus_per_run: GpusOption = None,
    cpus_per_run: CpusOption = None,
    max_concurrent: ConcurrencyOption = None,
    max_retries: RetriesOption = RUN_DEFAULTS.max_retries,
    dashboard: DashboardOption = False,
    log_every: LogEveryOption = RUN_DEFAULTS.log_every,
    connect_timeout: ConnectTimeoutOption = RUN_DEFAULTS.connect_timeout,
    tracker: TrackerOption = None,
    tracker_uri: TrackerUriOption = None,
    force: ForceOption = False,
) -> None:
    """Train one solver over a list of values of one setting (several seeds each) and
    report final accuracy, divergence and the validation curve per value: the reference
    report's Reptile learning-rate study for any solver and setting."""
    from raybench import api
    from raybench.execution import ExecutionOptions
    from raybench.report.measurements import sensitivity_rich
    from raybench.trackers import tracker_spec

    execution = ExecutionOptions(
        backend=backend,
        address=address,
        gpus_per_run=gpus_per_run,
        cpus_per_run=cpus_per_run or 1.0,
        max_concurrent=max_concurrent,
        max_retries=max_retries,
        dashboard=dashboard,
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker_spec(tracker, tracker_uri),
    )
    console = stdout()
    made = api.sensitivity(
        solver,
        param,
        values,
        preset=preset,
        seeds=seeds,
        settings=settings or [],
        steps=steps,
        device=device,
        experiment=experiment,
        out=out,
        data_dir=data_dir,
        execution=execution,
        console=console,
        force=force,
    )
    console.print(sensitivity_rich(made.table, made.solver, made.preset))
    if made.failed:
        raise typer.Exit(1)


@app.command("study", hidden=True)
@functools.wraps(sensitivity_command)
def study_command(*args: Any, **kwargs: Any) -> None:
    """The old name of ``raybench sensitivity``, kept for one release."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        "raybench: `raybench study` is now `raybench sensitivity`; the old name goes in the "
        "next release",
        markup=False,
    )
    sensitivity_command(*args, **kwargs)


@app.command("bench")
def bench_command(
    solvers: SolversOption = "all",
    preset: PresetOption = "paper",
    settings: SettingsOption = None,
    timed_steps: Annotated[
        int | None,
        timed_steps_option(
            **bounds("timed_steps"),
            metavar="N",
            help="Timed meta-steps (default: 20 on a GPU; on a CPU at least 5, more up to 50 "
            "until 15 s are timed).",
        ),
    ] = None,
    warmup: Annotated[
        int | None,
        warmup_option(
            **bounds("warmup"),
            metavar="N",
            help="Untimed meta-steps first (default: 5 GPU, 2 CPU).",
        ),
    ] = None,
    reference: Annotated[
        bool, typer.Option(help="Also time the per-task MAML and FOMAML loops (the reference).")
    ] = True,
    cpus_per_run: Annotated[
        float | None,
        cpus_per_run_option(
            **bounds("cpus_per_run", "bench"),
            metavar="N",
            help="CPUs of each measurement: its torch threads (CPU only; default 1, as a run "
            "gets).",
        ),
    ] = None,
    old_steps: Annotated[int | None, hidden_option("--steps", **bounds("timed_steps"))] = None,
    old_threads: Annotated[
        int | None, hidden_option("--threads", **bounds("cpus_per_run", "bench"))
    ] = None,
    device: DeviceOption = None,
    experiment: ExperimentOption = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    ab: Annotated[
        list[str] | None,
        typer.Option(
            "--ab",
            metavar="KEY=VALUE",
            help="A/B mode: time each solver as given (A) against the same with these "
            "settings changed (B), interleaved in one process on the same batch, and report "
            "B/A with its spread, the fraction of the matmul rate and whether the "
            "meta-gradients agree. Repeatable; --timed-steps sets the rounds (default 10).",
        ),
    ] = None,
    force: ForceOption = False,
) -> None:
    """Median ms per meta-step, peak memory and the implied run time of every solver, with
    the report-style per-task loop timed in the same run and each solver's speed-up; with
    --ab, two configurations of each solver timed against each other in one process."""
    from raybench.cli.commands import bench

    steps = renamed("--timed-steps", timed_steps, "--steps", old_steps, "bench")
    threads = renamed(
        "--cpus-per-run", None if cpus_per_run is None else int(cpus_per_run), "--threads",
        old_threads, "bench",
    )  # fmt: skip
    if ab:
        from raybench.cli.commands import bench_ab

        bench_ab(
            solvers=solvers, preset=preset, settings=settings or [], ab=ab, rounds=steps,
            warmup=warmup, threads=threads, device=device, data_dir=data_dir, console=stdout(),
        )  # fmt: skip
        return
    bench(
        solvers=solvers,
        preset=preset,
        settings=settings or [],
        timed_steps=steps,
        warmup=warmup,
        reference=reference,
        threads=threads,
        device=device,
        experiment=experiment,
        force=force,
        out=out,
        data_dir=data_dir,
        console=stdout(),
    )


class ReportFormat(str, Enum):
    rich = "rich"
    markdown = "markdown"
    csv = "csv"
    json = "json"
    latex = "latex"


class ReportTable(str, Enum):
    summary = "summary"
    runs = "runs"
    bench = "bench"
    scaling = "scaling"
    fidelity = "fidelity"
    trials = "trials"


ReadExperimentOption = Annotated[
    str | None,
    experiment_option(
        metavar="NAME",
        help="The experiment: a name under --out, or a folder (default: the newest).",
    ),
]
OldExperimentArgument = Annotated[str | None, typer.Argument(hidden=True, show_default=False)]


@app.command("report")
def report_command(
    experiment: ReadExperimentOption = None,
    positional: OldExperimentArgument = None,
    out: OutOption = Path("outputs"),
    fmt: Annotated[
        ReportFormat,
        format_option(
            help="rich: tables on the terminal, fitted to its width; markdown, csv, json: "
            "the same tables as plain values (for papers and dashboards); latex: a booktabs "
            "table for a paper.",
            case_sensitive=False,
        ),
    ] = ReportFormat.rich,
    output: Annotated[
        Path | None,
        output_option(metavar="FILE", help="Write to this file instead of stdout."),
    ] = None,
    runs: Annotated[
        bool,
        typer.Option(
            "--runs",
            help="Also show one row per run (with markdown/csv/json/latex: the per-run rows "
            "instead of the aggregated table).",
        ),
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            "-c",
            metavar="NAMES",
            help="Comma-separated columns to show, in this order, after solver, setting and "
            "test accuracy (always shown): vs_best (delta), runs, ms_per_step (ms), "
            "peak_memory_mb (mem), val_acc (val), test_std (std), wall_time_s (wall), "
            "roughness, steps, meta_steps, reference (ref), errors; or any column of the "
            "flat formats, e.g. vs_best_p. Default: all (rich; columns that do not fit go "
            "to a second table), test_acc,vs_best,ms,mem (latex).",
        ),
    ] = None,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact",
            help="With --format markdown: one column per --columns name, formatted as the "
            "terminal shows them (accuracy ± interval, Δ best with ★, units), for a README "
            "or slides.",
        ),
    ] = False,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults",
            help="A sweep's default configurations instead of its tuned ones (each with "
            "its tuning gain), Δ best among the defaults.",
        ),
    ] = False,
    table: Annotated[
        ReportTable | None,
        typer.Option(
            "--table",
            help="Only this table (default: the aggregated one and the stored studies; csv "
            "and json write one table).",
            case_sensitive=False,
        ),
    ] = None,
) -> None:
    """Print an experiment's results from its Parquet store alone: one row per setting,
    solver and configuration over its seeds, with stability measures and published
    references (stored as <experiment>/summary.parquet each time), and its bench, scaling
    and fidelity studies."""
    from raybench.cli.reports import report

    report(
        _experiment(experiment, positional, "report"),
        out,
        stdout(),
        fmt=fmt.value,
        output=output,
        show_runs=runs,
        columns=columns,
        table=None if table is None else table.value,
        compact=compact,
        defaults=defaults,
    )


class CompareFormat(str, Enum):
    rich = "rich"
    json = "json"


RichOrJsonOption = Annotated[
    CompareFormat,
    format_option(help="rich (tables) or json.", case_sensitive=False),
]
OutputFileOption = Annotated[
    Path | None,
    output_option(metavar="FILE", help="Write to this file instead of stdout."),
]


@app.command("compare")
def compare_command(
    a: Annotated[
        str, typer.Argument(metavar="A", help="A solver name or a configuration fingerprint.")
    ],
    b: Annotated[
        str, typer.Argument(metavar="B", help="A solver name or a configuration fingerprint.")
    ],
    old_b: OldExperimentArgument = None,
    experiment: ReadExperimentOption = None,
    out: OutOption = Path("outputs"),
    fmt: RichOrJsonOption = CompareFormat.rich,
    output: OutputFileOption = None,
    detect: Annotated[
        float | None,
        typer.Option(
            "--detect",
            metavar="POINTS",
            **bounds("detect"),
            help="Also say how many seeds on each side would detect a true difference of "
            "POINTS accuracy points with 80% power, from the observed variances.",
        ),
    ] = None,
) -> None:
    """Compare two configurations in every setting where both ran, over the same test
    tasks, seed by seed where both ran the same seeds from the same networks (else as
    independent seeds): per-seed accuracies, A - B with its 95% interval, the p-value
    (unadjusted: a single pair), the method and why, tasks, seeds, variance terms and the
    difference it would detect with 80% power. A solver name that has several
    configurations in a setting is ambiguous: give a fingerprint (`config` in `raybench
    report --format json`)."""
    from raybench.cli.reports import compare
    from raybench.planning import newest_experiment

    if old_b is not None:  # the old spelling: compare EXPERIMENT A B
        experiment = _experiment(experiment, a, "compare")
        a, b = b, old_b
    name = experiment or newest_experiment(out)
    compare(name, a, b, out, stdout(), fmt=fmt.value, output=output, detect=detect)


class FigureFormat(str, Enum):
    png = "png"
    pdf = "pdf"
    svg = "svg"


@app.command("plot")
def plot_command(
    experiment: ReadExperimentOption = None,
    positional: OldExperimentArgument = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            "-d",
            metavar="DIR",
            help="Folder for the figure files (default: the experiment's plots/ folder, e.g. "
            "outputs/<experiment>/plots).",
            show_default=False,
        ),
    ] = None,
    out: OutOption = Path("outputs"),
    fmt: Annotated[
        FigureFormat,
        format_option(help="png (raster), pdf or svg (vector, for papers).", case_sensitive=False),
    ] = FigureFormat.png,
    dpi: Annotated[
        int,
        typer.Option(
            "--dpi",
            **bounds("dpi"),
            metavar="N",
            help="Resolution: a figure is 12 x 6 inches, so 100 gives 1200x600 pixels, 300 "
            "gives 3600x1800 (PDF and SVG stay vector graphics).",
        ),
    ] = 100,
) -> None:
    """Draw an experiment's figures: curves per configuration, validation accuracy,
    accuracy against wall time, and the scaling, fidelity and sweep studies it has."""
    from raybench.cli.commands import plot

    name = _experiment(experiment, positional, "plot")
    plot(name, directory, out, stdout(), fmt=fmt.value, dpi=dpi)


class ReplicateFormat(str, Enum):
    rich = "rich"
    json = "json"
    markdown = "markdown"


VerdictFormatOption = Annotated[  # replicate's and agree's
    ReplicateFormat,
    format_option(
        help="rich (a table), json, or markdown (a table for a README).", case_sensitive=False
    ),
]


@app.command("replicate")
def replicate_command(
    experiment: Annotated[
        str,
        experiment_option(
            metavar="NAME", help="The published sweep: a name under --out, or a folder."
        ),
    ],
    seeds: Annotated[
        str | None,
        seeds_option(
            metavar="SEEDS",
            help="Fresh seeds, e.g. 8-15 or 8,9,10 (default: as many as the published "
            "runs', the next after them).",
        ),
    ] = None,
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            metavar="NAME",
            help="The replication's experiment: a name under --out, or a folder (default: "
            "<experiment>-replication beside the published one).",
        ),
    ] = None,
    out: OutOption = Path("outputs"),
    fmt: VerdictFormatOption = ReplicateFormat.rich,
    output: OutputFileOption = None,
    data_dir: DataDirOption = None,
    backend: Annotated[
        str,
        backend_option(metavar="ray|inline", help="ray (default) or inline, as for `run`."),
    ] = "ray",
    address: AddressOption = None,
    max_concurrent: ConcurrencyOption = None,
    cpus_per_run: Annotated[
        float,
        cpus_per_run_option(
            **bounds("cpus_per_run"), metavar="N", help="CPUs of each run (its torch threads)."
        ),
    ] = 1.0,
    gpus_per_run: Annotated[
        float | None,
        gpus_per_run_option(
            **bounds("gpus_per_run"), metavar="FRACTION", help="GPU share of each run."
        ),
    ] = None,
    connect_timeout: ConnectTimeoutOption = RUN_DEFAULTS.connect_timeout,
    log_every: LogEveryOption = RUN_DEFAULTS.log_every,
    force: ForceOption = False,
) -> None:
    """Train a published sweep's final runs again (every solver's default and selected
    configuration; no new search) on fresh seeds, then say which of its verdicts replicate
    (best, tied with the best, worse; tuning gain significant or not), how often each
    should by chance alone, and each accuracy's shift between the seed sets. Runs already
    in the replication are kept: run it again to continue an interrupted one."""
    from raybench import api
    from raybench.cli.replicate import check_output, show
    from raybench.execution import ExecutionOptions

    check_output(output)
    execution = ExecutionOptions(  # checked before anything is read, as for `run`
        backend=backend,
        address=address,
        max_concurrent=max_concurrent,
        cpus_per_run=cpus_per_run,
        gpus_per_run=gpus_per_run,
        connect_timeout=connect_timeout,
        log_every=log_every,
    )
    console = stdout()
    replicated = api.replicate(
        experiment, into, seeds=seeds, out=out, data_dir=data_dir, execution=execution,
        console=console, force=force,
    )  # fmt: skip
    show(replicated.rows, console, fmt.value, output)


@app.command("agree")
def agree_command(
    published: Annotated[
        str,
        typer.Option(
            "--published",
            metavar="NAME",
            help="The published experiment: a name under --out, or a folder (for the main "
            "job: benchmarks/results/quick).",
        ),
    ],
    experiment: ReadExperimentOption = None,
    out: OutOption = Path("outputs"),
    fmt: VerdictFormatOption = ReplicateFormat.rich,
    output: OutputFileOption = None,
) -> None:
    """Say whether an experiment (your run of the main job, say) agrees with a published
    one by the statistics, not seed for seed: the same numbers seed for seed come only from
    the same CPU kernels, elsewhere the distribution over seeds reproduces. For every
    published configuration: its accuracy shift (yours minus published) with its 95%
    interval over the same test tasks (seed-paired where the seeds and their draws are the
    same) and Holm-adjusted p, the shift it would detect with 80% power, the verdict against
    the best on each side and how likely it was to repeat, and how many seeds agree bitwise;
    the kernels of each side under it. Exit code 1 where they disagree: a shift significant
    after Holm's adjustment, or a published configuration without tested runs (a verdict
    99% likely to repeat that changed is named, not counted)."""
    from raybench import api
    from raybench.cli.replicate import check_output, show_agreement

    check_output(output)
    found = api.agreement(published, experiment, out)
    show_agreement(found, stdout(), fmt.value, output)
    if not found.agrees:
        raise typer.Exit(1)


@app.command("solvers")
def solvers_command() -> None:
    """List the registered solvers, their families and their own options."""
    from raybench.cli.commands import list_solvers

    list_solvers(stdout())


@app.command("settings")
def settings_command(
    preset: Annotated[
        str, preset_option(metavar="NAME", help="Show this preset's values.")
    ] = "paper",
) -> None:
    """List every setting with its value in a preset and its allowed range."""
    from raybench.cli.commands import list_settings

    list_settings(preset, stdout())


@app.command("fidelity")
def fidelity_command(
    experiment: Annotated[
        str | None,
        experiment_option(
            metavar="NAME",
            help="The experiment to store the table in: a name under --out, or a folder "
            "(default: fidelity).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="EXPERIMENT",
            help="Compare at the final checkpoint of each run of this experiment.",
        ),
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint", metavar="FILE", help="Compare at this checkpoint file (repeatable)."
        ),
    ] = None,
    init: Annotated[bool, typer.Option(help="Compare at the initialisation of --seed too.")] = True,
    solvers: SolversOption = "all",
    preset: PresetOption = "paper",
    settings: SettingsOption = None,
    sweeps: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            metavar="SOLVER.KNOB=V1,V2,...",
            help="Values of a solver's knob (repeatable); defaults: "
            f"{sweeps_text(DEFAULT_SWEEPS)}.",
        ),
    ] = None,
    tasks: Annotated[
        int,
        typer.Option(
            "--tasks", **bounds("tasks"), metavar="N", help="Fixed validation tasks, one batch."
        ),
    ] = DEFAULT_TASKS,
    seed: Annotated[
        int | None,
        seed_option(**bounds("seed"), metavar="N", help="Seed of the init point (default 0)."),
    ] = None,
    device: DeviceOption = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    force: ForceOption = False,
) -> None:
    """Cosine and relative error of every solver's meta-gradient against exact MAML's, on
    the same fixed tasks, at the initialisation and at stored checkpoints."""
    from raybench.cli.commands import fidelity

    fidelity(
        experiment=experiment,
        force=force,
        source=source,
        checkpoints=checkpoints or [],
        init=init,
        solvers=solvers,
        preset=preset,
        settings=settings or [],
        sweeps=sweeps or [],
        tasks=tasks,
        seed=seed,
        device=device,
        out=out,
        data_dir=data_dir,
        console=stdout(),
    )


@app.command("scaling")
def scaling_command(
    experiment: Annotated[
        str | None,
        experiment_option(
            metavar="NAME",
            help="The experiment to store the table in: a name under --out, or a folder "
            "(default: scaling).",
        ),
    ] = None,
    solvers: SolversOption = "all",
    inner_steps: Annotated[
        str,
        typer.Option(
            "--inner-steps", metavar="N1,N2,...", help="Comma-separated inner-step counts."
        ),
    ] = ",".join(map(str, DEFAULT_INNER_STEPS)),
    preset: PresetOption = "paper",
    settings: SettingsOption = None,
    timed_steps: Annotated[
        int | None,
        timed_steps_option(
            **bounds("timed_steps"),
            metavar="N",
            help="Timed meta-steps per measurement (default: 2 CPU, 5 GPU).",
        ),
    ] = None,
    warmup: Annotated[
        int,
        warmup_option(**bounds("warmup"), metavar="N", help="Untimed meta-steps before them."),
    ] = DEFAULT_WARMUP,
    cpus_per_run: Annotated[
        float | None,
        cpus_per_run_option(
            **bounds("cpus_per_run", "scaling"),
            metavar="N",
            help="CPUs of each measuring process: its torch threads (default: torch's, "
            "one per core).",
        ),
    ] = None,
    old_steps: Annotated[int | None, hidden_option("--steps", **bounds("timed_steps"))] = None,
    old_threads: Annotated[
        int | None, hidden_option("--threads", **bounds("cpus_per_run", "bench"))
    ] = None,
    device: DeviceOption = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    force: ForceOption = False,
) -> None:
    """Peak memory and time of one meta-step per solver as the inner steps grow, with a
    verdict on the expected shape (MAML and penalty grow, first-order and implicit flat)."""
    from raybench.cli.commands import scaling

    steps = renamed("--timed-steps", timed_steps, "--steps", old_steps, "scaling")
    threads = renamed(
        "--cpus-per-run", None if cpus_per_run is None else int(cpus_per_run), "--threads",
        old_threads, "scaling",
    )  # fmt: skip
    scaling(
        experiment=experiment,
        force=force,
        solvers=solvers,
        inner_steps=inner_steps,
        preset=preset,
        settings=settings or [],
        timed_steps=steps,
        warmup=warmup,
        threads=threads,
        device=device,
        out=out,
        data_dir=data_dir,
        console=stdout(),
    )


def _add_subcommands() -> None:
    from raybench.cli import data, store

    app.add_typer(data.app, name="data")
    app.add_typer(store.app, name="store")


_add_subcommands()


@functools.cache  # once per process: Typer reads every command's signature (40 ms a build)
def _command() -> Any:
    """The Click command tree of ``app``, its help tidied."""
    command = typer.main.get_command(app)
    tidy_help(command)
    return command


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: Typer/Click errors and RaybenchError as one line, exit 2;
    Ctrl-C and SIGTERM as one line, exit 130."""
    from raybench import signals

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    signals.stop_on_sigterm()
    command = _command()
    try:
        # Without standalone mode Click returns an Exit's code (130 for Ctrl-C) instead of
        # exiting, and lets usage errors propagate, so each can be reported in one line.
        code = command.main(args=argv, prog_name="raybench", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except UsageProblem as exc:  # usage errors, bad option values
        message = exc.format_message()
        if message:  # empty when bare `raybench` printed the help
            err.print(f"raybench: error: {one_line(message)}", markup=False)
        sys.exit(2)
    except RaybenchError as exc:
        err.print(f"raybench: error: {one_line(exc.spelled(API_FLAGS))}", markup=False)
        sys.exit(2)
    except OSError as exc:  # a file system's refusal a check before it did not foresee
        err.print(f"raybench: error: {one_line(os_error_line(exc))}", markup=False)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    if code == 130:
        err.print("raybench: interrupted" + continue_hint(argv))
    sys.exit(code if isinstance(code, int) else 0)


def os_error_line(exc: OSError) -> str:
    """``cannot write /proc/x: No such file or directory``: what and why, no traceback;
    results stored before it stay stored."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return f"{reason}; finished results are stored"
    return f"{exc.filename}: {reason}; finished results are stored"


def continue_hint(argv: list[str] | None) -> str:
    """How an interrupted command continues: run and sweep with --resume, replicate by
    running it again; the others claim nothing."""
    args = sys.argv[1:] if argv is None else argv
    name = next((a for a in args if not a.startswith("-")), "")
    if name in ("run", "sweep"):
        return "; finished results are stored, --resume continues"
    if name == "replicate":
        return "; finished runs are stored, the same command continues"
    return ""


def one_line(text: str) -> str:
    return " ".join(text.split())
