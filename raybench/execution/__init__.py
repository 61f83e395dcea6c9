"""Where runs execute, behind one call: ``execute(configs, ...)``.

``inline`` trains one run after another in this process (debugging, and the reference the
other back end must agree with); ``ray`` trains each run on its own Ray actor holding a
slice of a GPU (or CPUs), on a local embedded Ray or a cluster. Either way the driver is
the single writer of the results store: workers return their results, the driver writes
each run's files once, atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from raybench.config import RunConfig
from raybench.errors import RaybenchError
from raybench.results import ExperimentStore

if TYPE_CHECKING:
    from raybench.data import OmniglotImages
    from raybench.trackers import TrackerSpec

BACKENDS = ("ray", "inline")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str  # completed | diverged | failed | skipped
    error: str | None = None


@dataclass(frozen=True)
class ExecutionOptions:
    """How runs are placed; none of it changes a run's result."""

    backend: str = "ray"
    address: str | None = None  # None: start a local Ray; "auto", "host:port", "ray://..."
    gpus_per_run: float | None = None  # None: share the visible GPUs among concurrent runs
    cpus_per_run: float = 1.0
    max_concurrent: int | None = None
    max_retries: int = 2
    dashboard: bool = False
    rerun: bool = False
    source: str = "preset"  # recorded with each run: preset, config file, tuned
    log_every: float = 60.0  # not in a terminal: a progress line per run this often (0: off)
    tracker: TrackerSpec | None = None  # each stored run also logged to MLflow / TensorBoard
    label_settings: tuple[str, ...] = ()  # settings named in progress rows (a study's value)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise RaybenchError(f"unknown backend {self.backend!r} (backends: ray, inline)")
        if self.gpus_per_run is not None and not 0 <= self.gpus_per_run <= 8:
            raise RaybenchError(f"--gpus-per-run {self.gpus_per_run}: expected 0..8")
        if self.cpus_per_run <= 0:
            raise RaybenchError(f"--cpus-per-run {self.cpus_per_run}: expected > 0")
        if self.max_retries < 0:
            raise RaybenchError(f"--max-retries {self.max_retries}: expected >= 0")
        if self.log_every < 0:
            raise RaybenchError(f"--log-every {self.log_every}: expected >= 0 seconds")


def execute(
    configs: Sequence[RunConfig],
    store: ExperimentStore,
    console: Console,
    options: ExecutionOptions,
    data_dir: Path | None = None,
) -> list[RunSummary]:
    """Train, test and store every config not already finished in the store (unless
    ``rerun``). Failed runs are stored with their error; the others go on."""
    from raybench.data import load_omniglot
    from raybench.trackers import TrackedStore, open_trackers

    data = load_omniglot(data_dir)  # fail early, and build the cache once for local workers
    todo = [c for c in configs if options.rerun or not store.is_finished(c.run_id)]
    skipped = [RunSummary(c.run_id, "skipped") for c in configs if c not in todo]
    if skipped:
        console.print(
            f"[dim]{len(skipped)} run(s) already stored, skipped (--rerun trains them again)[/]"
        )
    if options.rerun:  # trained again from step 0, not continued
        for config in todo:
            store.progress_path(config.run_id).unlink(missing_ok=True)
    trackers = open_trackers(options.tracker, store)
    if trackers is not None:  # the driver logs each run from the store once it is written
        for summary in skipped:
            trackers.log_run(store, summary.run_id)
        store = TrackedStore(store, trackers)
    try:
        return skipped + _run(todo, store, console, options, data, data_dir)
    finally:
        if trackers is not None:
            trackers.close()


def _run(
    todo: Sequence[RunConfig],
    store: ExperimentStore,
    console: Console,
    options: ExecutionOptions,
    data: OmniglotImages,
    data_dir: Path | None,
) -> list[RunSummary]:
    if not todo:
        return []
    if options.backend == "inline":
        from raybench.execution.inline import run_inline

        threads = max(1, int(options.cpus_per_run))
        return run_inline(
            todo,
            data,
            store,
            console,
            source=options.source,
            threads=threads,
            log_every=options.log_every,
            label_settings=options.label_settings,
        )
    from raybench.execution.ray_backend import run_on_ray

    return run_on_ray(todo, store, console, options, data_dir)
