"""Measuring from Python: :func:`bench` (time and memory per meta-step), :func:`bench_ab`
(two configurations against each other), :func:`fidelity` (meta-gradients against exact
MAML) and :func:`scaling` (cost against inner steps), as the commands of the same names.

Each stores its table in an experiment (``bench/``, ``fidelity/``, ``scaling/``) and
returns it with the experiment; the CLI prints the returned table and nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from raybench.api.parameters import checked
from raybench.api.reading import Experiment, PathLike, optional_path
from raybench.api.training import names_text, setting_overrides, settings_dict
from raybench.errors import ParameterError, RaybenchError
from raybench.measurements.defaults import DEFAULT_INNER_STEPS, DEFAULT_TASKS, DEFAULT_WARMUP

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console

    from raybench.measurements.ab import ABResult


@dataclass(frozen=True)
class Measurement:
    """What a measuring command stored: the experiment, the table (every solver, point or
    count measured; the rows of the Parquet files written) and the files."""

    experiment: Experiment
    table: pa.Table
    files: list[Path]


def _overrides(
    preset: str, settings: Mapping[str, Any] | Sequence[str] | None, device: str | None
) -> dict[str, Any]:
    from raybench.config import check_preset

    check_preset(preset)
    return setting_overrides(settings, device=device)


@checked("bench")
def bench(
    solvers: str | Sequence[str] = "all",
    preset: str = "paper",
    *,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    timed_steps: int | None = None,
    warmup: int | None = None,
    reference: bool = True,
    threads: int | None = None,
    device: str | None = None,
    experiment: str | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Measurement:
    """Median ms per meta-step, peak memory and implied run time of each solver, with the
    report's per-task MAML/FOMAML loop timed in the same process (``reference``), as
    ``raybench bench`` does.

    Args:
        solvers: names, comma-separated text or ``"all"``.
        preset: one preset; ``settings`` overrides its settings (a mapping or
            ``key=value`` texts); ``device``: auto, cpu or cuda.
        timed_steps: timed meta-steps (default: 20 on a GPU; on a CPU at least 5, more
            up to 50 until 15 s are timed); ``warmup``: untimed ones first.
        threads: torch threads of each measurement (CPU; default 1, as a run gets).
        experiment: its name under ``out`` or a folder (default ``bench``).
        console: where progress goes (a new Rich console by default).
        force: create the experiment even in a system or foreign folder.

    Returns:
        :class:`Measurement`: the experiment and the table stored in ``bench/``.

    Raises:
        RaybenchError: an unknown solver, preset or setting.

    Example::

        timing = raybench.api.bench("maml,fomaml", "smoke", timed_steps=5)
        timing.table.to_pandas()[["solver", "ms_per_step", "speedup_vs_loop"]]
    """
    import hashlib

    from rich.console import Console

    from raybench.data import load_omniglot
    from raybench.measurements.bench import bench_table
    from raybench.planning import build_configs, experiment_store, one_preset, resolve_solvers
    from raybench.results.store import write_table

    preset = one_preset("bench", preset)
    overrides = _overrides(preset, settings, device)
    configs = build_configs(resolve_solvers(names_text(solvers)), preset, overrides, [0])
    data = load_omniglot(optional_path(data_dir))
    store = experiment_store(experiment or "bench", Path(out), force)
    console = console or Console()
    console.print(
        f"[bold]raybench bench[/] {len(configs)} solver(s), experiment {escape(str(store.root))}"
    )
    table = bench_table(
        configs,
        data,
        steps=timed_steps,
        warmup=warmup,
        with_reference=reference,
        threads=threads,
        experiment=store.name,
    )
    stamp = hashlib.sha1(str(table.column("created_at")[0]).encode()).hexdigest()[:8]
    path = store.root / "bench" / f"{preset}-{stamp}.parquet"
    write_table(path, table)
    return Measurement(Experiment(store), table, [path])


@checked("bench")
def bench_ab(
    solvers: str | Sequence[str],
    ab: Mapping[str, Any] | Sequence[str],
    preset: str = "paper",
    *,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    rounds: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    data_dir: PathLike | None = None,
    console: Console | None = None,
) -> list[ABResult]:
    """Each solver as given (A) against the same with ``ab`` changed (B), interleaved in one
    process on the same batch, as ``raybench bench --ab`` does; nothing is stored.

    Args:
        solvers: names, comma-separated text or ``"all"``.
        ab: the settings B changes, a mapping or ``key=value`` texts.
        preset: one preset; ``settings``, ``device``: as :func:`bench`.
        rounds: A/B rounds (default 10); ``warmup``: untimed rounds first (default 2).
        threads: torch threads (default 1, as a run gets).

    Returns:
        One :class:`~raybench.measurements.ab.ABResult` per solver: B/A with its spread,
        the fraction of the matmul rate and whether the meta-gradients agree.

    Raises:
        RaybenchError: an unknown solver, preset or setting.

    Example::

        raybench.api.bench_ab("maml", {"batching": "loop"}, "smoke", rounds=4)
    """
    import torch
    from rich.console import Console

    from raybench.data import load_omniglot
    from raybench.measurements.ab import ab_compare, check_pair
    from raybench.planning import build_configs, one_preset, resolve_solvers

    preset = one_preset("bench", preset)
    overrides = _overrides(preset, settings, device)
    names = resolve_solvers(names_text(solvers))
    configs_a = build_configs(names, preset, overrides, [0])
    try:  # A built: what fails now is B's change
        configs_b = build_configs(names, preset, {**overrides, **settings_dict(ab, "ab")}, [0])
    except ParameterError:
        raise
    except RaybenchError as exc:
        raise ParameterError("{ab}: {why}", why=exc) from None
    for a, b in zip(configs_a, configs_b):
        check_pair(a, b)  # before the data is loaded
    data = load_omniglot(optional_path(data_dir))
    console = console or Console()
    previous = torch.get_num_threads()  # the caller's (a notebook's), given back after
    torch.set_num_threads(threads or 1)  # as each run gets by default
    try:
        results = []
        for a, b in zip(configs_a, configs_b):
            console.print(f"[dim]{escape(a.solver)}: A and B interleaved...[/]")
            warm = 2 if warmup is None else warmup
            results.append(ab_compare(a, b, data, rounds=rounds or 10, warmup=warm))
    finally:
        torch.set_num_threads(previous)
    return results


@checked("fidelity")
def fidelity(
    solvers: str | Sequence[str] = "all",
    preset: str = "paper",
    *,
    source: PathLike | None = None,
    checkpoints: Sequence[PathLike] = (),
    init: bool = True,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    sweeps: Sequence[str] = (),
    tasks: int = DEFAULT_TASKS,
    seed: int | None = None,
    device: str | None = None,
    experiment: str | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Measurement:
    """Each meta-solver's meta-gradient against exact MAML's on the same fixed validation
    tasks (cosine, relative error, norm ratio), at the initialisation and at stored
    checkpoints, with solver settings swept, as ``raybench fidelity`` does.

    Args:
        solvers: names, comma-separated text or ``"all"`` (baselines are skipped: they
            have no meta-gradient).
        preset: the preset; ``settings`` overrides (a mapping or ``key=value`` texts).
        source: an experiment (name under ``out`` or folder) whose stored runs give
            points to compare at; ``checkpoints``: checkpoint files, more points.
        init: also compare at the initialisation of ``seed`` (default 0).
        sweeps: solver settings to sweep, each ``SOLVER.KNOB=V1,V2,...`` (default: each
            meta-solver's own, see ``raybench fidelity --help``).
        tasks: fixed validation tasks, one batch.
        experiment: its name under ``out`` or a folder (default ``fidelity``).
        console: where progress goes (a new Rich console by default).
        force: create the experiment even in a system or foreign folder.

    Returns:
        :class:`Measurement`: the experiment, every point's rows and the files in
        ``fidelity/`` (one per point).

    Raises:
        RaybenchError: no meta-solver, nothing to compare at, a bad sweep or checkpoint.

    Example::

        grads = raybench.api.fidelity("maml,imaml", "smoke", sweeps=["imaml.cg_steps=1,5"])
        grads.table.to_pandas()[["solver", "knob_value", "cosine"]]
    """
    from rich.console import Console

    from raybench.data import load_omniglot
    from raybench.measurements.fidelity import FidelityStudy, init_point
    from raybench.measurements.fidelity_plan import meta_solvers, parse_sweep
    from raybench.planning import experiment_store, resolve_solvers

    overrides = _overrides(preset, settings, device)
    if seed is not None:
        overrides["seed"] = str(seed)
    kept, skipped = meta_solvers(resolve_solvers(names_text(solvers)))
    if not kept:
        raise ParameterError(
            "no meta-solver in {solvers} {given}: baselines have no meta-gradient",
            given=names_text(solvers),
        )
    sweep_map = dict(parse_sweep(spec) for spec in sweeps)
    out = Path(out)
    points, notes = _fidelity_points(source, checkpoints, init, out)
    store = experiment_store(experiment or "fidelity", out, force)
    data = load_omniglot(optional_path(data_dir))
    study = FidelityStudy(
        data, preset=preset, overrides=overrides, solvers=kept, sweeps=sweep_map, n_tasks=tasks
    )
    if init:
        points.insert(0, init_point(study.reference))
    for point in points:  # every point checked before the first long computation
        study.params_at(point)
    console = console or Console()
    _announce_fidelity(console, study, points, tasks, store, skipped, notes)
    return _measure_fidelity(study, points, store, console)


def _measure_fidelity(study: Any, points: Sequence[Any], store: Any, console: Console
                      ) -> Measurement:  # fmt: skip
    """Every point's rows, each written to ``fidelity/`` as soon as it is computed."""
    import pyarrow as pa

    from raybench.results.store import write_table

    tables, files = [], []
    for point in points:
        console.print(f"  {escape(point.name)}: {len(study.cases) + 1} meta-gradients")
        table = study.run(point, experiment=store.name)
        path = store.path("fidelity", table.column("study_id")[0].as_py())
        write_table(path, table)
        tables.append(table)
        files.append(path)
    return Measurement(Experiment(store), pa.concat_tables(tables), files)


def _fidelity_points(
    source: PathLike | None, checkpoints: Sequence[PathLike], init: bool, out: Path
) -> tuple[list[Any], list[str]]:
    """The points to compare at: an experiment's runs, checkpoints (the initialisation is
    added by the study); and why any run was skipped. Nothing to compare at is an error."""
    from raybench.measurements.fidelity import checkpoint_point, run_points
    from raybench.results import open_experiment

    points, notes = [], []
    if source is not None:
        found, notes = run_points(open_experiment(str(source), out))
        if not found:
            raise ParameterError(
                "experiment {name!r} has no run to compare at: {why}",
                name=str(source),
                why="; ".join(notes[:3]),
            )
        points += found
    points += [checkpoint_point(Path(path)) for path in checkpoints]
    if not init and not points:
        raise ParameterError("nothing to compare at: give {source}, {checkpoints}, or keep {init}")
    return points, notes


def _announce_fidelity(
    console: Console,
    study: Any,
    points: Sequence[Any],
    tasks: int,
    store: Any,
    skipped: Sequence[str],
    notes: Sequence[str],
) -> None:
    ref = study.reference
    per_point = len(study.cases) + 1  # every case, and the exact MAML reference
    console.print(
        f"[bold]raybench fidelity[/] {len(points)} point(s) x {per_point} meta-gradients "
        f"({len(study.cases)} solver settings compared with exact MAML, {ref.inner_steps} "
        f"inner steps, inner lr {ref.inner_lr:g}) on {tasks} fixed validation tasks; "
        f"experiment {escape(str(store.root))}"
    )
    if skipped:
        console.print(
            f"skipped solvers {escape(', '.join(skipped))}: baselines pre-train a classifier and "
            "have no meta-gradient"
        )
    for note in notes:
        console.print(f"skipped point {escape(str(note))}")


def parse_counts(spec: str | Sequence[int]) -> list[int]:
    """``"1,2,5"`` (or a sequence) -> ``[1, 2, 5]``, with a one-line error for anything else."""
    try:
        if isinstance(spec, str):
            counts = [int(part) for part in spec.split(",") if part.strip()]
        else:
            counts = [int(count) for count in spec]
    except (TypeError, ValueError):
        counts = []
    if not counts or min(counts) < 0:
        raise ParameterError(
            "{inner_steps} expects comma-separated counts >= 0, got {spec!r}", spec=spec
        )
    return counts


@checked("scaling")
def scaling(
    solvers: str | Sequence[str] = "all",
    preset: str = "paper",
    *,
    inner_steps: str | Sequence[int] = DEFAULT_INNER_STEPS,
    settings: Mapping[str, Any] | Sequence[str] | None = None,
    timed_steps: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    threads: int | None = None,
    device: str | None = None,
    experiment: str | None = None,
    out: PathLike = "outputs",
    data_dir: PathLike | None = None,
    console: Console | None = None,
    force: bool = False,
) -> Measurement:
    """Peak memory and time per meta-step of each solver against the number of inner steps
    (each measurement in a fresh process on a CPU), as ``raybench scaling`` does.

    Args:
        solvers: names, comma-separated text or ``"all"``.
        preset: the preset; ``settings`` overrides (a mapping or ``key=value`` texts);
            ``device``: auto, cpu or cuda.
        inner_steps: the counts, ``"1,2,5"`` or a sequence.
        timed_steps: timed meta-steps per measurement (default: 2 CPU, 5 GPU);
            ``warmup``: untimed ones before them.
        threads: torch threads of each measurement (CPU; default 1).
        experiment: its name under ``out`` or a folder (default ``scaling``).
        console: where progress goes (a new Rich console by default).
        force: create the experiment even in a system or foreign folder.

    Returns:
        :class:`Measurement`: the experiment and the table stored in ``scaling/``.

    Raises:
        RaybenchError: an unknown solver, preset or setting, or bad counts.

    Example::

        cost = raybench.api.scaling("maml,fomaml", "smoke", inner_steps=[1, 5])
        cost.table.to_pandas()[["solver", "inner_steps", "peak_memory_mb"]]
    """
    from rich.console import Console

    from raybench.data import load_omniglot
    from raybench.measurements.scaling import scaling_table
    from raybench.planning import experiment_store, resolve_solvers
    from raybench.results.store import write_table
    from raybench.runtime import resolve_device
    from raybench.solvers import make_config

    overrides = _overrides(preset, settings, device)
    counts = parse_counts(inner_steps)
    names = resolve_solvers(names_text(solvers))
    for name in names:  # settings checked before anything runs
        make_config(name, preset, overrides)
    on = resolve_device(make_config(names[0], preset, overrides).device)
    steps = timed_steps or (5 if on.type == "cuda" else 2)
    store = experiment_store(experiment or "scaling", Path(out), force)
    data_path = optional_path(data_dir)
    data = load_omniglot(data_path)  # found (and cached) once, before any measuring process
    console = console or Console()
    console.print(
        f"[bold]raybench scaling[/] {escape(', '.join(names))} at inner steps "
        f"{', '.join(map(str, counts))}, preset {escape(str(preset))}, {steps} timed step(s) "
        f"after {warmup} warm-up; "
        f"{'a fresh process per measurement' if on.type == 'cpu' else escape(str(on))}; "
        f"experiment {escape(str(store.root))}"
    )
    table = scaling_table(
        preset=preset, overrides=overrides, solvers=names, inner_steps=counts, steps=steps,
        warmup=warmup, threads=threads, data=data, data_dir=data_path, experiment=store.name,
        progress=lambda message: console.print(f"  {escape(str(message))}"),
    )  # fmt: skip
    path = store.path("scaling", table.column("study_id")[0].as_py())
    write_table(path, table)
    return Measurement(Experiment(store), table, [path])
