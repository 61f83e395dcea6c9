"""Training from Python: :func:`run` (``raybench run``) and :func:`sensitivity`
(``raybench sensitivity``), each returning the experiment it stored into."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from raybench.api.parameters import checked
from raybench.api.reading import Experiment, PathLike, optional_path
from raybench.errors import ParameterError
from raybench.execution.options import DEFAULTS as RUN_DEFAULTS

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console

    from raybench.execution import ExecutionOptions


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


def _value_texts(values: str | Sequence[Any]) -> list[str]:
    """A study's values as texts: ``"0.001,0.01"`` or a sequence."""
    if isinstance(values, str):
        return [v.strip() for v in values.split(",") if v.strip()]
    return [str(v) for v in values]


@checked("sensitivity")
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

    from raybench.execution import ExecutionOptions, execute
    from raybench.measurements.sensitivity import sensitivity_table, setting_key, study_configs
    from raybench.planning import default_seeds, experiment_store, one_preset
    from raybench.results.store import ensure_writable, write_table
    from raybench.solvers import solver_class

    solver_class(solver)
    preset = one_preset("sensitivity", preset)
    key = setting_key(solver, param)
    overrides = setting_overrides(settings, steps=steps, device=device)
    n_seeds = seeds or default_seeds([preset])
    value_list = _value_texts(values)
    configs = study_configs(solver, preset, overrides, key, value_list, range(n_seeds))
    # the stored names keep the command's old name (source "study", study.parquet), so
    # stores made before the rename read the same
    store = experiment_store(experiment or f"study-{solver}-{param}", Path(out), force)
    ensure_writable(store.root)
    console = console or Console()
    console.print(f"[bold]raybench sensitivity[/] {escape(solver)}: {escape(key)} in "
                  f"{{{escape(', '.join(value_list))}}} x {n_seeds} seed(s), experiment "
                  f"{escape(str(store.root))}")  # fmt: skip
    execution = replace(execution or ExecutionOptions(), source="study", label_settings=(key,))
    data = optional_path(data_dir)
    outcomes = execute(configs, store, console, execution, data)
    table = sensitivity_table(store.read("runs"), store.read("curves"), key, configs)
    write_table(store.root / "study.parquet", table)
    return Sensitivity(Experiment(store, outcomes), solver, key, preset, table)


def settings_dict(
    settings: Mapping[str, Any] | Sequence[str] | None, parameter: str = "settings"
) -> dict[str, Any]:
    """Settings as the API takes them (a mapping, ``key=value`` texts, or one text); errors
    name ``parameter``. A run's seed is never a setting: the seeds flags set it."""
    from raybench.config import parse_assignments

    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        found = dict(settings)
    elif isinstance(settings, str):
        found = parse_assignments([settings], parameter)
    else:
        found = parse_assignments(settings, parameter)
    if "seed" in found:
        raise ParameterError(
            "{" + parameter + "} seed={seed}: a run's seed is not a setting; {seeds} (and "
            "{first_seed} for run) choose the seeds",
            seed=found["seed"],
        )
    return found


def setting_overrides(
    settings: Mapping[str, Any] | Sequence[str] | None,
    *,
    steps: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The settings a command overrides: ``settings`` (:func:`settings_dict`), and the
    meta-steps and device when given on their own."""
    overrides = settings_dict(settings)
    if steps is not None:
        overrides["meta_steps"] = str(steps)
    if device is not None:
        overrides["device"] = device
    return overrides


def names_text(value: str | Sequence[str]) -> str:
    """Names as the API takes them (a sequence or comma-separated text), as text."""
    return value if isinstance(value, str) else ",".join(value)


@checked("run")
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

    from rich.console import Console

    from raybench.execution import ExecutionOptions
    from raybench.planning import experiment_store
    from raybench.trackers import tracker_spec

    if (seeds is not None and seeds < 1) or first_seed < 0:
        raise ParameterError("{seeds} {n} from {first_seed} {first}: expected at least 1, "
                             "from >= 0", n=seeds, first=first_seed)  # fmt: skip
    console, out = console or Console(), Path(out)
    execution = ExecutionOptions(
        backend=backend, address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
        max_concurrent=max_concurrent, max_retries=max_retries, dashboard=dashboard,
        rerun=rerun, log_every=log_every, connect_timeout=connect_timeout,
        tracker=tracker_spec(tracker, tracker_uri),
    )  # fmt: skip
    if resume is not None:
        given = {"settings": bool(settings), "steps": steps is not None,
                 "device": device is not None, "config_files": bool(config_files),
                 "matrix": matrix, "preset": names_text(preset) != "paper",
                 "seeds": seeds is not None, "first_seed": first_seed != 0,
                 "experiment": experiment is not None, "rerun": rerun}  # fmt: skip
        planned = _resumed_runs(resume, out, names_text(solvers), given, console)
        if not planned.configs:
            return Experiment(planned.store, [])
    else:
        overrides = setting_overrides(settings, steps=steps, device=device)
        seeds_from = (first_seed, seeds)
        planned = _planned_runs(solvers, preset, matrix, config_files, overrides, seeds_from)
        planned.store = experiment_store(experiment or planned.name, out, force)
    return _train_planned(planned, execution, console, optional_path(data_dir))


@dataclass
class _Planned:
    """The runs a ``run`` call trains, and how they are labelled and stored."""

    configs: list[Any]
    source: str = "preset"  # preset or config (files); a resumption keeps each run's own
    labels: tuple[str, ...] = ()  # settings that tell runs apart beyond the solver
    sources: dict[str, str] | None = None  # per run id, a resumption's recorded sources
    name: str = ""  # the experiment's default name
    store: Any = None


def _resumed_runs(
    resume: str, out: Path, solvers: str, given: Mapping[str, bool], console: Console
) -> _Planned:
    """Every unfinished run of an interrupted experiment (of ``solvers`` when named);
    options that would define other runs (``given``) are refused."""
    from raybench.planning import refuse_with_resume, resume_configs, resume_store

    refuse_with_resume([name for name, on in given.items() if on])
    store = resume_store(resume, out)
    resumption = resume_configs(store, solvers)
    for line in resumption.lines:
        console.print(line)
    return _Planned(resumption.configs, sources=resumption.sources, store=store)


def _planned_runs(
    solvers: str | Sequence[str],
    preset: str | Sequence[str],
    matrix: bool,
    config_files: Sequence[PathLike],
    overrides: dict[str, Any],
    seeds_from: tuple[int, int | None],
) -> _Planned:
    """The runs of config files, or of solvers x presets (every standard setting with
    ``matrix``), each with its seeds (the presets' default count unless given)."""
    from raybench.config import MATRIX_PRESETS
    from raybench.configfile import read_config_file
    from raybench.planning import (
        build_configs,
        configs_from_files,
        default_seeds,
        resolve_presets,
        resolve_solvers,
    )

    first_seed, seeds = seeds_from
    if config_files:
        files = [Path(p) for p in config_files]
        presets = [read_config_file(f)[1] for f in files]
        seed_range = range(first_seed, first_seed + (seeds or default_seeds(presets)))
        configs = configs_from_files(files, overrides, seed_range)
        name = "+".join(dict.fromkeys(f.stem for f in files))
        planned = _Planned(configs, "config", name=name)
    else:
        presets = list(MATRIX_PRESETS) if matrix else resolve_presets(names_text(preset))
        seed_range = range(first_seed, first_seed + (seeds or default_seeds(presets)))
        names = resolve_solvers(names_text(solvers))
        configs = [c for p in presets for c in build_configs(names, p, overrides, seed_range)]
        planned = _Planned(configs, name="matrix" if matrix else "+".join(presets))
    if len(set(presets)) > 1:
        planned.labels = ("preset",)
    return planned


def _train_planned(planned: _Planned, execution: Any, console: Console, data: Path | None
                   ) -> Experiment:  # fmt: skip
    """Say what runs, then train, test and store every planned run."""
    from dataclasses import replace

    from raybench.execution import execute

    store, configs = planned.store, planned.configs
    names = list(dict.fromkeys(c.solver for c in configs))
    console.print(
        f"[bold]raybench[/] {len(configs)} run(s) of {escape(', '.join(names))} "
        f"({execution.backend} back end), experiment {escape(str(store.root))}"
    )
    execution = replace(execution, source=planned.source, label_settings=planned.labels)
    outcomes = execute(configs, store, console, execution, data, sources=planned.sources)
    return Experiment(store, outcomes)
