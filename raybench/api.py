"""raybench from Python (a notebook, a script): the same code paths as the CLI.

    import raybench

    exp = raybench.run(["maml", "fomaml"], preset="smoke", seeds=2, backend="inline")
    exp.summary[["solver", "test_acc", "test_ci95", "vs_best", "vs_best_verdict"]]
    exp.curves.groupby(["solver", "step"]).val_query_acc_post.mean()

    exp = raybench.load("paper")                  # a stored experiment, by name or folder
    raybench.compare("paper", "maml", "fomaml")   # the paired comparison, per setting

Every table is a pandas DataFrame read from the experiment's Parquet store when first
used. ``raybench run`` and ``raybench report`` are thin layers over :func:`run` and
:func:`summary_records`; ``raybench compare`` over :func:`paired_results`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raybench.execution.options import DEFAULTS as RUN_DEFAULTS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from rich.console import Console

    from raybench.execution import ExecutionOptions, RunSummary
    from raybench.report.comparison import PairedResult
    from raybench.results import ExperimentStore

from raybench.report.experiment import (
    paired_results,
    protocol_lines,
    replication_records,
    summary_records,
)

__all__ = [
    "Experiment", "Figures", "Sensitivity", "compare", "load", "paired_results", "plot",
    "protocol_lines", "replication", "replication_records", "report", "run", "sensitivity",
    "summary", "summary_records",
]  # fmt: skip

PathLike = str | Path


def open_store(experiment: PathLike | None = None, out: PathLike = "outputs") -> ExperimentStore:
    """An experiment by name under ``out``, by folder path, or (None) the newest under
    ``out``; a one-line error naming what there is otherwise."""
    from raybench.planning import newest_experiment
    from raybench.results import open_experiment

    out = Path(out)
    name = str(experiment) if experiment is not None else newest_experiment(out)
    return open_experiment(name, out)


def _frame(table: pa.Table, schema: pa.Schema | None = None) -> pd.DataFrame:
    """A table as a DataFrame; an empty one keeps the table's columns when known."""
    if table.num_rows == 0 and schema is not None:
        table = schema.empty_table()
    return table.to_pandas()


class Experiment:
    """An experiment's stored tables as pandas DataFrames, each read on first use.

    ``runs`` (one row per run), ``curves`` (one per evaluation point), ``tasks`` (each
    tested run's result on every fixed test task), ``summary`` (the report's table: one
    row per setting, solver and configuration), ``trials`` (a sweep's), and the studies
    ``bench``, ``scaling``, ``fidelity``; empty where the experiment has none. After
    :func:`run`, ``ran`` lists that call's runs and how each ended."""

    def __init__(self, store: ExperimentStore, outcomes: Sequence[RunSummary] = ()) -> None:
        self.store = store
        self.outcomes = list(outcomes)

    def __repr__(self) -> str:
        return f"Experiment({self.name!r}, root={str(self.root)!r})"

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def root(self) -> Path:
        return self.store.root

    @cached_property
    def runs(self) -> pd.DataFrame:
        from raybench.results.schema import RUNS_SCHEMA

        return _frame(self.store.read("runs"), RUNS_SCHEMA)

    @cached_property
    def curves(self) -> pd.DataFrame:
        from raybench.results.schema import CURVES_SCHEMA

        return _frame(self.store.read("curves"), CURVES_SCHEMA)

    @cached_property
    def tasks(self) -> pd.DataFrame:
        from raybench.results.schema import TASKS_SCHEMA

        return _frame(self.store.read("tasks"), TASKS_SCHEMA)

    @cached_property
    def summary(self) -> pd.DataFrame:
        from raybench.report.records import summary_arrow

        return summary_arrow(summary_records(self.store)).to_pandas()

    @cached_property
    def trials(self) -> pd.DataFrame:
        return _frame(self.store.read("trials"))

    @cached_property
    def bench(self) -> pd.DataFrame:
        return self._study("bench")

    @cached_property
    def scaling(self) -> pd.DataFrame:
        return self._study("scaling")

    @cached_property
    def fidelity(self) -> pd.DataFrame:
        return self._study("fidelity")

    @property
    def ran(self) -> pd.DataFrame:
        """The runs of the :func:`run` call that returned this: run_id, status (completed,
        diverged, failed, or skipped: already stored) and error."""
        import pandas as pd

        rows = [{"run_id": s.run_id, "status": s.status, "error": s.error} for s in self.outcomes]
        return pd.DataFrame(rows, columns=["run_id", "status", "error"])

    def compare(self, a: str, b: str, detect: float | None = None) -> pd.DataFrame:
        """:func:`compare` on this experiment."""
        return _comparison_frame(paired_results(self.store, a, b), detect)

    def _study(self, name: str) -> pd.DataFrame:
        import pandas as pd

        from raybench.report.measurement_records import STUDY_RECORDS

        rows, names = STUDY_RECORDS[name](self.store)
        return pd.DataFrame(rows, columns=names)


def load(experiment: PathLike | None = None, out: PathLike = "outputs") -> Experiment:
    """A stored experiment: by name under ``out``, by folder, or the newest (None). Its
    tables are DataFrames: ``load("paper").runs``, ``.curves``, ``.tasks``, ``.summary``,
    ``.trials``, ``.bench``, ``.scaling``, ``.fidelity``."""
    return Experiment(open_store(experiment, out))


def replication(
    published: PathLike, replicated: PathLike | None = None, out: PathLike = "outputs"
) -> pd.DataFrame:
    """:func:`replication_records` as a DataFrame: ``published`` a sweep (name under
    ``out`` or folder), ``replicated`` its replication (default ``<published>-replication``
    beside it).

        raybench.replication("benchmarks/results/published")
    """
    import pandas as pd

    from raybench.report.replication import FIELDS

    store = open_store(published, out)
    beside = store.root.parent / f"{store.root.name}-replication"
    other = open_store(beside if replicated is None else replicated, out)
    return pd.DataFrame(replication_records(store, other), columns=list(FIELDS))


def summary(experiment: PathLike | None = None, out: PathLike = "outputs") -> pd.DataFrame:
    """The report's table as a DataFrame: one row per setting, solver and configuration,
    with test accuracy and its interval, the paired comparison with the best row
    (``vs_best*``), stability, cost and published references (see the README)."""
    return load(experiment, out).summary


def _comparison_frame(results: Sequence[PairedResult], detect: float | None = None) -> pd.DataFrame:
    import pandas as pd

    from raybench.report.comparison import RECORD_COLUMNS, comparison_record

    records = [comparison_record(r, detect) for r in results]
    return pd.DataFrame(records, columns=list(RECORD_COLUMNS))


def compare(
    experiment: PathLike | None,
    a: str,
    b: str,
    out: PathLike = "outputs",
    detect: float | None = None,
) -> pd.DataFrame:
    """A against B (solver names, or configuration fingerprints where a solver has
    several configurations) in every setting where both have runs: one row per setting
    with the per-seed mean accuracies, the difference A - B, its 95% interval, the
    (unadjusted) p-value, the method (``paired``: seed-paired or independent seeds) and
    ``why``, tasks, seeds, variance terms, ``detectable_80`` (the difference detected with
    80% power at 5%) and, given ``detect`` (points), ``seeds_needed`` on each side."""
    return _comparison_frame(paired_results(open_store(experiment, out), a, b), detect)


@dataclass(frozen=True)
class Figures:
    """What :func:`plot` drew: the experiment's name, the folder, the files written, and
    why each other figure was skipped (no data of its kind)."""

    experiment: str
    directory: Path
    written: list[Path]
    skipped: list[str]


def report(
    experiment: PathLike | None = None,
    out: PathLike = "outputs",
    *,
    fmt: str = "markdown",
    runs: bool = False,
    columns: str | Sequence[str] | None = None,
    table: str | None = None,
    compact: bool = False,
    defaults: bool = False,
    width: int | None = None,
) -> str:
    """The text ``raybench report`` prints: the report's table of ``experiment`` (name
    under ``out``, folder, or the newest), its per-run rows (``runs``) and its stored
    studies, computed from the store (which gains ``summary.parquet`` as with the CLI).

    Args:
        experiment: an experiment's name under ``out`` or its folder; None: the newest.
        out: the folder of experiments.
        fmt: ``markdown``, ``csv``, ``json``, ``latex`` or ``rich`` (the terminal's tables,
            drawn ``width`` characters wide, without colour).
        runs: the per-run rows instead of the aggregated table.
        columns: the columns (names or groups, as ``raybench report --columns``).
        table: one table only (``summary``, ``runs``, ``trials``, ``bench``, ...).
        compact: Markdown with one column per group, as the terminal shows them.
        defaults: a sweep's default configurations instead of its tuned ones.
        width: the width of ``rich`` tables (default ``$COLUMNS``, else 160).

    Returns:
        The report as text, exactly what the CLI writes for the same options.

    Raises:
        RaybenchError: an unknown format, table or column, or no such experiment.

    Example::

        print(raybench.api.report("benchmarks/results/published", compact=True))
    """
    from raybench.report.render import report_text

    if columns is not None and not isinstance(columns, str):
        columns = ",".join(columns)
    return report_text(
        open_store(experiment, out),
        fmt,
        show_runs=runs,
        columns=columns,
        table=table,
        compact=compact,
        defaults=defaults,
        width=width,
    )


def plot(
    experiment: PathLike | None = None,
    out: PathLike = "outputs",
    *,
    directory: PathLike | None = None,
    fmt: str = "png",
    dpi: int = 100,
) -> Figures:
    """Draw every figure the experiment has data for, as ``raybench plot`` does.

    Args:
        experiment: an experiment's name under ``out`` or its folder; None: the newest.
        out: the folder of experiments.
        directory: where the figures go (default ``<experiment>/plots``).
        fmt: ``png``, ``pdf`` or ``svg``.
        dpi: resolution; a figure is 12 x 6 inches.

    Returns:
        :class:`Figures`: the folder, the files written, the kinds skipped and why.

    Raises:
        RaybenchError: a bad format or resolution, no such experiment, nothing to plot.

    Example::

        figures = raybench.plot("benchmarks/results/published", directory="figs", fmt="svg")
        figures.written   # [PosixPath('figs/accuracy-vs-time.svg'), ...]
    """
    from raybench.errors import RaybenchError
    from raybench.report.plots import Output, plot_experiment

    output = Output(fmt, dpi)  # checked before anything is read
    store = open_store(experiment, out)
    target = Path(directory) if directory is not None else store.root / "plots"
    skipped: list[str] = []
    written = plot_experiment(store, target, on_skip=skipped.append, output=output)
    if not written:
        raise RaybenchError(
            f"nothing to plot in {store.root}: " + "; ".join(skipped or ["no data"])
        )
    return Figures(store.name, target, list(written), skipped)


@dataclass(frozen=True)
class Sensitivity:
    """What :func:`sensitivity` made: the experiment (its runs, this call's outcomes in
    ``experiment.ran``), the setting varied (its full key), the preset, and the table of
    values (``study.parquet``: runs, final accuracy, divergence, mean curve per value)."""

    experiment: Experiment
    solver: str
    setting: str
    preset: str
    table: pa.Table

    @property
    def failed(self) -> bool:
        """Whether a run of this call failed (the CLI then exits with 1)."""
        return any(o.status == "failed" for o in self.experiment.outcomes)


def sensitivity(
    solver: str,
    param: str,
    values: str | Sequence[Any],
    *,
    preset: str = "paper",
    seeds: int | None = None,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    steps: int | None = None,
    device: str | None = None,
    experiment: str | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    execution: ExecutionOptions | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Sensitivity:
    """One solver trained at each value of one setting (several seeds each), as
    ``raybench sensitivity`` does: the report's Reptile learning-rate study for any solver
    and setting.

    Args:
        solver: the solver to study.
        param: the setting to vary: any ``raybench settings`` key or one of the solver's
            options (``lam`` or ``imaml.lam``).
        values: the values, as ``"0.001,0.01,0.1"`` or a sequence.
        preset: one preset to start from.
        seeds: seeds per value (default: the CLI's rule, 3; 1 for ``smoke``).
        settings: further settings, a mapping or ``key=value`` texts.
        steps: meta-steps of training; ``device``: auto, cpu or cuda.
        experiment: its name under ``out`` or a folder (default ``study-<solver>-<param>``).
        execution: where runs train (:class:`raybench.execution.ExecutionOptions`; default
            Ray, one CPU a run).
        console: where progress goes (a new Rich console by default).
        force: create the experiment even in a system or foreign folder.

    Returns:
        :class:`Sensitivity`: the experiment, the setting's key and the table per value.

    Raises:
        RaybenchError: an unknown solver, setting, preset or value.

    Example::

        study = raybench.api.sensitivity("reptile", "outer_lr", "0.001,0.1", preset="smoke")
        study.table.to_pandas()[["value", "test_acc_mean", "diverged"]]
    """
    from dataclasses import replace

    from rich.console import Console

    from raybench.errors import RaybenchError
    from raybench.execution import ExecutionOptions, execute
    from raybench.measurements.sensitivity import sensitivity_table, setting_key, study_configs
    from raybench.planning import default_seeds, experiment_store, resolve_presets
    from raybench.results.store import ensure_writable, write_table
    from raybench.solvers import solver_class

    solver_class(solver)
    presets = resolve_presets(preset)
    if len(presets) != 1:
        raise RaybenchError("raybench sensitivity takes one --preset")
    (preset,) = presets
    key = setting_key(solver, param)
    overrides = _settings(settings)
    if steps is not None:
        overrides["meta_steps"] = str(steps)
    if device is not None:
        overrides["device"] = device
    n_seeds = seeds or default_seeds([preset])
    if isinstance(values, str):
        value_list = [v.strip() for v in values.split(",") if v.strip()]
    else:
        value_list = [str(v) for v in values]
    configs = study_configs(solver, preset, overrides, key, value_list, range(n_seeds))
    # the stored names keep the command's old name (source "study", study.parquet), so
    # stores made before the rename read the same
    store = experiment_store(experiment or f"study-{solver}-{param}", Path(out), force)
    ensure_writable(store.root)
    console = console or Console()
    console.print(
        f"[bold]raybench sensitivity[/] {solver}: {key} in {{{', '.join(value_list)}}} x "
        f"{n_seeds} seed(s), experiment {store.root}"
    )
    execution = replace(execution or ExecutionOptions(), source="study", label_settings=(key,))
    data = None if data_dir is None else Path(data_dir)
    outcomes = execute(configs, store, console, execution, data)
    table = sensitivity_table(store.read("runs"), store.read("curves"), key, configs)
    write_table(store.root / "study.parquet", table)
    return Sensitivity(Experiment(store, outcomes), solver, key, preset, table)


def _settings(settings: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    from raybench.config import parse_assignments

    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        return dict(settings)
    if isinstance(settings, str):
        return parse_assignments([settings])
    return parse_assignments(settings)


def _names(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def run(
    solvers: str | Sequence[str] = "all",
    preset: str | Sequence[str] = "paper",
    *,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    seeds: int | None = None,
    first_seed: int = 0,
    steps: int | None = None,
    device: str | None = None,
    config_files: Sequence[PathLike] = (),
    matrix: bool = False,
    experiment: str | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    backend: str = "ray",
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float = RUN_DEFAULTS.cpus_per_run,
    max_concurrent: int | None = None,
    max_retries: int = RUN_DEFAULTS.max_retries,
    dashboard: bool = False,
    rerun: bool = False,
    resume: str | None = None,
    log_every: float = RUN_DEFAULTS.log_every,
    connect_timeout: float = RUN_DEFAULTS.connect_timeout,
    tracker: str | Sequence[str] | None = None,
    tracker_uri: str | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Experiment:
    """Train, test and store every (solver, preset, seed), as ``raybench run`` does, and
    return the experiment. Runs already stored are skipped (``rerun`` trains them again);
    a failing run is stored as ``failed`` with its error and the others go on.

    ``solvers``/``preset``: names or ``"all"``/comma-separated text; several presets
    give solvers x presets (``matrix``: every standard setting). ``settings`` overrides
    settings, as a mapping (``{"inner_lr": 0.4, "imaml.lam": 2}``) or ``key=value`` texts;
    ``config_files`` runs config files (a sweep's ``best/<solver>.yaml``) instead.
    ``backend``: ``"ray"`` (each run on a Ray actor; an initialised Ray, e.g. the
    notebook's, is used as it is) or ``"inline"`` (one after another in this process).
    ``resume``: an interrupted experiment's name: every unfinished run of every command
    that planned runs in it is continued (narrowed to ``solvers`` when given); options that
    would define other runs are refused. ``seeds``: 3 by default, 1 when every preset is
    ``smoke`` (the CLI's rule). ``tracker``: ``"mlflow"`` and/or ``"tensorboard"``, each run
    also logged there (``tracker_uri``: MLflow's tracking URI, default a SQLite file in the
    experiment). Progress goes to ``console`` (a new Rich console by default; it renders in
    Jupyter too). ``force``: create the experiment even in a system folder or a folder of
    other files (refused otherwise)."""
    from dataclasses import replace

    from rich.console import Console

    from raybench.config import MATRIX_PRESETS
    from raybench.configfile import read_config_file
    from raybench.errors import RaybenchError
    from raybench.execution import ExecutionOptions, execute
    from raybench.planning import (
        build_configs,
        configs_from_files,
        default_seeds,
        experiment_store,
        refuse_with_resume,
        resolve_presets,
        resolve_solvers,
        resume_configs,
        resume_store,
    )
    from raybench.trackers import tracker_spec

    if (seeds is not None and seeds < 1) or first_seed < 0:
        raise RaybenchError(f"seeds {seeds} from {first_seed}: expected at least 1, from >= 0")
    console = console or Console()
    out = Path(out)
    execution = ExecutionOptions(
        backend=backend,
        address=address,
        gpus_per_run=gpus_per_run,
        cpus_per_run=cpus_per_run,
        max_concurrent=max_concurrent,
        max_retries=max_retries,
        dashboard=dashboard,
        rerun=rerun,
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker_spec(tracker, tracker_uri),
    )
    labels: tuple[str, ...] = ()
    sources: dict[str, str] | None = None
    if resume is not None:
        given = {
            "--set": bool(settings),
            "--steps": steps is not None,
            "--device": device is not None,
            "--config": bool(config_files),
            "--matrix": matrix,
            "--preset": _names(preset) != "paper",
            "--seeds": seeds is not None,
            "--seed": first_seed != 0,
            "--experiment": experiment is not None,
            "--rerun": rerun,
        }
        refuse_with_resume([name for name, on in given.items() if on])
        store = resume_store(resume, out)
        resumption = resume_configs(store, _names(solvers))
        for line in resumption.lines:
            console.print(line)
        configs, sources = resumption.configs, resumption.sources
        source = "preset"
        if not configs:
            return Experiment(store, [])
    else:
        overrides = _settings(settings)
        if steps is not None:
            overrides["meta_steps"] = str(steps)
        if device is not None:
            overrides["device"] = device
        if config_files:
            files = [Path(p) for p in config_files]
            presets = [read_config_file(f)[1] for f in files]
            seed_range = range(first_seed, first_seed + (seeds or default_seeds(presets)))
            configs = configs_from_files(files, overrides, seed_range)
            source = "config"
            default_name = "+".join(dict.fromkeys(f.stem for f in files))
        else:
            presets = list(MATRIX_PRESETS) if matrix else resolve_presets(_names(preset))
            seed_range = range(first_seed, first_seed + (seeds or default_seeds(presets)))
            names = resolve_solvers(_names(solvers))
            configs = [c for p in presets for c in build_configs(names, p, overrides, seed_range)]
            source = "preset"
            default_name = "matrix" if matrix else "+".join(presets)
        if len(set(presets)) > 1:
            labels = ("preset",)
        store = experiment_store(experiment or default_name, out, force)
    names = list(dict.fromkeys(c.solver for c in configs))
    console.print(
        f"[bold]raybench[/] {len(configs)} run(s) of {', '.join(names)} "
        f"({execution.backend} back end), experiment {store.root}"
    )
    data = None if data_dir is None else Path(data_dir)
    execution = replace(execution, source=source, label_settings=labels)
    outcomes = execute(configs, store, console, execution, data, sources=sources)
    return Experiment(store, outcomes)
