"""Hyperparameter sweeps: Ray Tune drives the trials, Optuna (TPE) proposes them, ASHA
stops the poor ones early on validation accuracy.

Per solver: one ``ray.tune.Tuner`` over ``search_spaces/<solver>.yaml`` with
``OptunaSearch`` (seeded TPE, its study persisted in SQLite under the experiment so Optuna's
own tools can open it), ``ASHAScheduler`` on the validation accuracy each trial reports at
every evaluation, capped concurrency, ``FailureConfig`` retries. When a solver's search
ends, the driver writes its ``trials`` table (``raybench.search.trials``) and
``best/<solver>.yaml``. The live display is ``raybench.search.live``; how the Optuna study
records the search (pruned trials, meta-steps, Tune's trial ids) is
``raybench.search.optuna_study``.

Resuming never reads Ray Tune's own state (``tune/``: Python pickles, which would run any
code a crafted results folder put in them). Each trial that ends is recorded by the driver
as it ends, as a Parquet row in ``trial-records/<solver>/``, and Optuna keeps every told
trial in its SQLite study: ``--resume`` keeps the recorded trials, marks the trials that
were running as failed in the study, and lets a fresh Tuner sample the rest, with TPE
informed by every finished trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from ray.tune import Callback
from rich.console import Console
from rich.markup import escape

from raybench.config import RunConfig
from raybench.configfile import write_config_file
from raybench.errors import RaybenchError
from raybench.execution.progress import LOG_EVERY
from raybench.execution.ray_backend import gpu_share
from raybench.limits import RANGES, within
from raybench.results import ExperimentStore
from raybench.results.store import warn_stderr, write_table
from raybench.results.trials import trials_table
from raybench.search.live import LiveSweep, params_text
from raybench.search.protocol import Protocol
from raybench.search.spaces import SearchSpace, decode
from raybench.search.trials import (
    METRIC,
    best_trial,
    error_text,
    mark_selected,
    recorded_trials,
    trial_row,
)
from raybench.solvers import make_config
from raybench.trackers import TrackerSpec


@dataclass(frozen=True)
class SweepOptions:
    """How the trials are executed; what they are is the protocol."""

    max_concurrent: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float = 1.0
    max_retries: int = 2
    resume: bool = False

    def __post_init__(self) -> None:  # a trial's resources are a run's (raybench.limits)
        within("max_concurrent", self.max_concurrent, RANGES["max_concurrent"], integer=True,
               optional=True)  # fmt: skip
        within("gpus_per_trial", self.gpus_per_trial, RANGES["gpus_per_run"], optional=True)
        within("cpus_per_trial", self.cpus_per_trial, RANGES["cpus_per_run"])
        within("max_retries", self.max_retries, RANGES["max_retries"], integer=True)


@dataclass(frozen=True)
class SolverSweep:
    solver: str
    trials: pa.Table
    best: RunConfig | None
    best_val_acc: float | None
    best_params: dict[str, Any] | None = None  # the best trial's sampled values
    default_won: bool = False  # the selected trial is the default configuration


def trial_config(solver: str, preset: str, overrides: dict[str, Any], params: dict) -> RunConfig:
    return make_config(solver, preset, {**overrides, **decode(params)})


def sweep_trial(
    params: dict, *, solver: str, preset: str, overrides: dict[str, Any], data_dir: str | None
) -> None:
    """One trial, run by Tune in a worker: train on the sampled settings and report the
    validation accuracy at every evaluation (ASHA's rungs). No test-set evaluation."""
    import ray
    import torch
    from ray import tune

    from raybench.data import load_omniglot
    from raybench.train import Progress as RunEvent
    from raybench.train import train

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    config = trial_config(solver, preset, overrides, params)
    data = load_omniglot(data_dir)

    def report(event: RunEvent) -> None:
        at_eval = event.step % config.eval_every == 0 or event.step == event.total
        if event.phase == "train" and at_eval and event.val_acc is not None:
            tune.report({METRIC: event.val_acc, "step": event.step, "status": "running"})

    result = train(config, data, progress=report, test=False)
    if result.status == "failed":
        raise RuntimeError(result.error)  # Tune retries it, then records it as errored
    if result.status == "diverged":
        tune.report({METRIC: 0.0, "step": result.steps_done, "status": "diverged"})


class _InterruptionLog(logging.Handler):
    """Notices Tune's own SIGINT handling, which logs and returns instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Stop signal received" in message or "has been interrupted" in message:
            self.seen = True


class _RestoreHint(logging.Filter):
    """Drops Tune's advice to ``Tuner.restore(...)`` its pickled state after Ctrl-C: raybench
    never unpickles it (the trust model); ``--resume`` continues from raybench's own
    records, and raybench's interruption line says so."""

    def __init__(self, log: _InterruptionLog) -> None:
        super().__init__()
        self.log = log

    def filter(self, record: logging.LogRecord) -> bool:
        if "Tuner.restore" in record.getMessage():
            self.log.seen = True
            return False
        return True


@contextlib.contextmanager
def interruption_watch() -> Iterator[_InterruptionLog]:
    """Around ``Tuner.fit``: notices Tune's interruption, and puts back the signal
    handlers Tune replaced (it restores them only when a signal comes, so a Ctrl-C during
    the final runs would otherwise be taken by a finished search)."""
    handler = _InterruptionLog()
    logger = logging.getLogger("ray.tune")
    logger.addHandler(handler)
    hint = _RestoreHint(handler)
    tune_run = logging.getLogger("ray.tune.tune")  # where Tune logs its restore advice
    tune_run.addFilter(hint)
    signals = [s for s in (signal.SIGINT, getattr(signal, "SIGUSR1", None)) if s is not None]
    saved = {s: signal.getsignal(s) for s in signals}
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        tune_run.removeFilter(hint)
        for number, previous in saved.items():
            if previous is not None:
                signal.signal(number, previous)


class TrialRecorder(Callback):
    """Writes each trial's row the moment the trial ends: raybench's own record of the
    search, which ``--resume`` continues from (Tune's pickled state is never read)."""

    def __init__(
        self, folder: Path, solver: str, experiment: str, base: RunConfig, default: dict
    ) -> None:
        self.folder, self.solver, self.experiment, self.base = folder, solver, experiment, base
        self.default = default  # the default trial's parameters, decoded
        self.history: dict[str, list[dict[str, float]]] = {}

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if result.get(METRIC) is not None and result.get("status") == "running":
            point = {"step": int(result.get("step") or 0), METRIC: float(result[METRIC])}
            self.history.setdefault(trial.trial_id, []).append(point)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.history.pop(trial.trial_id, None)  # the retry reports its curve from the start

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, error_text(trial))

    def _record(self, trial: Any, error: str | None) -> None:
        row = trial_row(
            self.solver,
            self.experiment,
            self.base,
            str(trial.trial_id),
            dict(trial.config or {}),
            self.history.pop(trial.trial_id, []),
            dict(trial.last_result or {}),
            error,
            self.default,
        )
        path = self.folder / f"{trial.trial_id}.parquet"
        try:
            write_table(path, trials_table([row]))
        except OSError as exc:  # the search goes on; --resume would sample this trial again
            warn_stderr(f"trial {trial.trial_id} not recorded in {path}: {exc.strerror or exc}")


def check_study_db(study_db: Path) -> None:
    """An Optuna study database a resumed sweep can open (none yet is fine): SQLite, whole,
    with Optuna's tables; else a one-line error naming the file, before anything runs."""
    import sqlite3

    if not study_db.exists():
        return
    damaged = f"{study_db} is not an Optuna study database (damaged?); move it away"
    try:
        with study_db.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise RaybenchError(damaged)
        connection = sqlite3.connect(f"{study_db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            (verdict,) = connection.execute("PRAGMA quick_check").fetchone()
            tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        finally:
            connection.close()
    except (OSError, sqlite3.Error):
        raise RaybenchError(damaged) from None
    if verdict != "ok" or (tables and "studies" not in tables):
        raise RaybenchError(damaged)


def fail_unfinished(study_db: Path, study_name: str) -> int:
    """Trials an interrupted sweep left running in the Optuna study, told as failed (TPE
    then ignores them); their number."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{study_db}")
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        return 0
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(running)


def sweep_solver(
    space: SearchSpace,
    protocol: Protocol,
    store: ExperimentStore,
    options: SweepOptions,
    console: Console,
    data_dir: Path | None = None,
    trackers: TrackerSpec | None = None,
    log_every: float = LOG_EVERY,
) -> SolverSweep:
    """Search one solver's space under ``protocol`` with Tune + Optuna + ASHA, the
    default configuration first; write its trials and best. With ``options.resume``, the
    trials recorded by an interrupted search are kept and only the rest are sampled (the
    default again only if it was not recorded). ``trackers``: trials logged through
    Tune's own MLflow / TensorBoard callbacks."""
    solver, preset, overrides = space.solver, protocol.preset, dict(protocol.overrides)
    trial_overrides = {**overrides, "meta_steps": protocol.steps}
    base = make_config(solver, preset, trial_overrides)  # validates the fixed settings now
    default = space.default_point(base)
    store.root.mkdir(parents=True, exist_ok=True)
    study_db = (store.root / "optuna.db").resolve()
    study_name = f"{store.name}-{solver}"
    records = store.root / "trial-records" / solver
    if not options.resume:
        shutil.rmtree(records, ignore_errors=True)  # an earlier, abandoned search's
    earlier = recorded_trials(records)
    remaining = protocol.trials[solver] - len(earlier)
    default_done = any(r.get("default") for r in earlier)
    if options.resume:
        failed = fail_unfinished(study_db, study_name) if study_db.is_file() else 0
        console.print(
            f"[dim]{escape(solver)}: {len(earlier)} trial(s) recorded, kept; {failed} interrupted, "
            f"{max(0, remaining)} to sample[/]"
        )
    if remaining > 0:
        _search(
            space, solver, base, trial_overrides, preset, store, options, console, data_dir,
            records=records, study_db=study_db, study_name=study_name, samples=remaining,
            sampler_seed=protocol.search_seed + len(earlier), protocol=protocol,
            default=None if default_done else default, trackers=trackers, log_every=log_every,
        )  # fmt: skip
    rows = mark_selected(recorded_trials(records))
    table = trials_table(rows)
    write_table(store.root / "trials" / f"{solver}.parquet", table)
    shutil.rmtree(records, ignore_errors=True)  # all in the trials table now
    best_params, best_value = best_trial(rows)
    default_won = any(r["selected"] and r["default"] for r in rows)
    best = None
    if best_params is not None:
        best = trial_config(solver, preset, overrides, best_params)
        if default_won:
            best = make_config(solver, preset, overrides)  # the default itself, None kept
        note = (
            f"best of {table.num_rows} trials of sweep {store.name!r} for {solver} "
            f"(validation accuracy {best_value:.2f}% after {base.meta_steps} meta-steps"
            + ("; the default configuration" if default_won else "")
            + f"); run it with: raybench run --config {store.root / 'best' / (solver + '.yaml')}"
        )
        write_config_file(store.root / "best" / f"{solver}.yaml", best, note)
    return SolverSweep(solver, table, best, best_value, best_params, default_won)


def _search(
    space: SearchSpace,
    solver: str,
    base: RunConfig,
    trial_overrides: dict[str, Any],
    preset: str,
    store: ExperimentStore,
    options: SweepOptions,
    console: Console,
    data_dir: Path | None,
    *,
    records: Path,
    study_db: Path,
    study_name: str,
    samples: int,
    sampler_seed: int,
    protocol: Protocol,
    default: dict[str, Any] | None,
    trackers: TrackerSpec | None = None,
    log_every: float = LOG_EVERY,
) -> None:
    """One Tune run of ``samples`` trials; each writes its record under ``records``.
    ``default``: the default configuration's point, enqueued as the first trial."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from raybench.search.optuna_study import SweepSearch
    from raybench.trackers.tune import tune_callbacks

    storage_root = (store.root / "tune").resolve()
    searcher = SweepSearch(
        meta_steps=base.meta_steps,
        metric=METRIC,
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        storage=optuna.storages.RDBStorage(f"sqlite:///{study_db}"),
        study_name=study_name,
        points_to_evaluate=None if default is None else [default],
    )
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=protocol.evaluations,
        grace_period=protocol.grace_evaluations,
        reduction_factor=protocol.reduction_factor,
    )
    total_gpus = ray.cluster_resources().get("GPU", 0.0)
    concurrent = options.max_concurrent or max(
        1, int(ray.cluster_resources().get("CPU", 1) // options.cpus_per_trial)
    )
    concurrent = min(concurrent, samples)
    gpus = options.gpus_per_trial
    if gpus is None:
        gpus = gpu_share(total_gpus, concurrent)
    trainable = tune.with_resources(
        tune.with_parameters(
            sweep_trial,
            solver=solver,
            preset=preset,
            overrides=trial_overrides,
            data_dir=None if data_dir is None else str(Path(data_dir).resolve()),
        ),
        {"cpu": options.cpus_per_trial, "gpu": gpus},
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own tables off: ours are live
    recorder = TrialRecorder(
        records, solver, store.name, base, None if default is None else decode(default)
    )
    tuner = tune.Tuner(
        trainable,
        param_space=space.to_tune(),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=samples,
            max_concurrent_trials=concurrent,
            # a trial's worker is kept for the next one (same resources): a new worker
            # imports torch and maps Omniglot again, seconds that short trials add up
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=solver,
            storage_path=str(storage_root),
            failure_config=tune.FailureConfig(max_failures=options.max_retries),
            callbacks=[
                recorder,
                LiveSweep(console, solver, samples, base, log_every=log_every),
                *tune_callbacks(trackers, store, solver),
            ],
            verbose=0,
        ),
    )
    with interruption_watch() as interrupted:
        tuner.fit()
    if interrupted.seen:
        # Tune returned the partial results; writing them would mark the sweep finished.
        # Stop here: the trials that ended are recorded, and `--resume` samples the rest.
        raise KeyboardInterrupt


def sweep_done(store: ExperimentStore, solver: str) -> bool:
    return (store.root / "trials" / f"{solver}.parquet").exists()


def check_spaces(solvers: Sequence[str], directory: Path | None) -> list[SearchSpace]:
    """Load and validate every space before anything starts."""
    from raybench.search.spaces import load_space

    spaces = [load_space(s, directory) for s in solvers]
    if not spaces:
        raise RaybenchError("no solvers to sweep")
    return spaces


def run_sweep(
    protocol: Protocol,
    store: ExperimentStore,
    options: SweepOptions,
    console: Console,
    *,
    spaces_dir: Path | None = None,
    address: str | None = None,
    dashboard: bool = False,
    data_dir: Path | None = None,
    trackers: TrackerSpec | None = None,
    log_every: float = LOG_EVERY,
) -> dict[str, SolverSweep | None]:
    """Sweep each solver of ``protocol`` in turn on one Ray session. A solver whose sweep
    already finished in this experiment is not searched again (its best config stays)."""
    import optuna

    from raybench.data import load_omniglot
    from raybench.execution.ray_backend import ray_session

    spaces = check_spaces(protocol.solvers, spaces_dir)  # every file checked before it starts
    load_omniglot(data_dir)  # fail early; builds the cache local workers read
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    outcomes: dict[str, SolverSweep | None] = {}
    with ray_session(address, dashboard):
        for space in spaces:
            if sweep_done(store, space.solver) and options.resume:
                console.print(f"[dim]{escape(space.solver)}: sweep already finished, kept[/]")
                outcomes[space.solver] = None
                continue
            outcome = sweep_solver(
                space, protocol, store, options, console, data_dir, trackers, log_every
            )
            statuses = (
                outcome.trials.column("status").to_pylist() if outcome.trials.num_rows else []
            )
            counts = {s: statuses.count(s) for s in ("completed", "stopped", "errored", "diverged")}
            best = (
                "none completed"
                if outcome.best_params is None
                else f"best val {outcome.best_val_acc:.2f}% with {params_text(outcome.best_params)}"
            )
            console.print(
                f"{space.solver}: {outcome.trials.num_rows} trials "
                + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                + f"; {best}",
                soft_wrap=True,
                markup=False,
            )
            outcomes[space.solver] = outcome
    return outcomes
