"""Experiment trackers: every stored run mirrored to MLflow or TensorBoard.

The driver logs a run right after writing it to the store, reading it back from the stored
files: the store stays the single source of truth and the single writer's job, and workers
(on a cluster, on other machines) never need to reach the tracking store. A run already
stored when a command starts is logged too, once, so adding ``--tracker`` to a finished
experiment's command fills the tracker. A tracker that fails says so in one warning line
and is left out for the rest of the command; runs are stored either way. Sweeps log their
trials through Ray Tune's own integrations (:mod:`raybench.trackers.tune`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow.parquet as pq

from raybench.config import did_you_mean
from raybench.errors import ParameterError, RaybenchError
from raybench.results import ExperimentStore

if TYPE_CHECKING:
    from raybench.train import RunResult

# tracker name: (the module it needs, the extra that installs it)
TRACKERS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboardX", "tensorboard")}

# columns of a ``runs`` row logged as final results (``results/<column>``)
RESULT_COLUMNS = (
    "final_val_acc",
    "test_acc_mean",
    "test_acc_ci95",
    "test_tasks_n",
    "steps_done",
    "resumed_from_step",
    "wall_time_s",
    "train_time_s",
    "ms_per_step",
    "peak_memory_mb",
    "n_params",
)
# columns of a ``curves`` row that are not curves
CURVE_KEYS = ("schema_version", "run_id", "experiment", "solver", "seed", "step")
# columns of a ``runs`` row logged as tags (``raybench.<column>``)
TAG_COLUMNS = (
    "run_id",
    "experiment",
    "solver",
    "family",
    "status",
    "preset",
    "source",
    "seed",
    "config_fingerprint",
    "device",
    "node",
    "git_commit",
    "code_fingerprint",
    "error",
)


@dataclass(frozen=True)
class TrackerSpec:
    """Which trackers a command logs to; ``uri`` is MLflow's tracking URI (None: a SQLite
    store under the experiment)."""

    names: tuple[str, ...] = ()
    uri: str | None = None

    def __post_init__(self) -> None:
        names = [n.strip().lower() for name in self.names for n in name.split(",") if n.strip()]
        for name in names:
            if name not in TRACKERS:
                raise RaybenchError(
                    f"unknown tracker {name!r}{did_you_mean(name, TRACKERS)}; "
                    f"trackers: {', '.join(TRACKERS)}"
                )
        object.__setattr__(self, "names", tuple(dict.fromkeys(names)))
        if self.uri is not None and "mlflow" not in self.names:
            raise ParameterError("{tracker_uri} is MLflow's tracking URI: give {tracker} mlflow")

    def __bool__(self) -> bool:
        return bool(self.names)

    def check_installed(self) -> None:
        """Each tracker's library imports, or a one-line error saying what to install."""
        for name in self.names:
            module, extra = TRACKERS[name]
            try:
                with quiet_libraries():
                    importlib.import_module(module)
            except ImportError as exc:
                raise ParameterError(
                    "{tracker} {name} needs {module}, which is not installed ({exc}): "
                    "pip install 'raybench[{extra}]'",
                    name=name,
                    module=module,
                    exc=exc,
                    extra=extra,
                ) from None
            except Exception as exc:  # installed but broken, e.g. mismatched dependencies
                why = " ".join(str(exc).split())[:200]
                raise ParameterError(
                    "{tracker} {name}: {module} does not import ({kind}: {why}); reinstall it "
                    "with pip install --force-reinstall 'raybench[{extra}]'",
                    name=name,
                    module=module,
                    kind=type(exc).__name__,
                    why=why,
                    extra=extra,
                ) from None


def tracker_spec(
    names: str | Sequence[str] | None, uri: str | None = None, *, check: bool = True
) -> TrackerSpec | None:
    """``--tracker`` values (repeated or comma-separated) as a checked spec; None for none."""
    if isinstance(names, str):
        names = [names]
    spec = TrackerSpec(tuple(names or ()), uri)
    if not spec:
        return None
    if check:
        spec.check_installed()
    return spec


def warn(message: str) -> None:
    """One plain line on stderr: a tracker problem never stops a command."""
    text = " ".join(message.split())
    print(f"raybench: warning: {text}", file=sys.stderr, flush=True)


def failure(name: str, exc: BaseException) -> str:
    why = " ".join(str(exc).split())[:300] or type(exc).__name__
    return (
        f"tracker {name} failed ({type(exc).__name__}: {why}); the runs are stored as "
        f"usual, not logged to {name} for the rest of this command"
    )


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """MLflow's store on SQLAlchemy 2.1 warns about a deprecated loader strategy of its own
    code, and logs its database setup at INFO: neither is the user's to act on."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*``noload`` loader strategy is deprecated", module=r"mlflow\."
        )
        warnings.filterwarnings(
            "ignore", message=r".*``noload`` loader strategy is deprecated", module="sqlalchemy"
        )
        try:
            yield
        finally:
            logger.setLevel(level)


@dataclass
class StoredRun:
    """One run as stored: its ``runs`` row and its ``curves`` rows in step order."""

    row: dict[str, Any]
    curves: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.row["run_id"])

    @property
    def ended(self) -> str:
        """What identifies this stored version of the run (a rerun replaces it)."""
        ended = self.row.get("ended_at")
        return ended.isoformat() if isinstance(ended, datetime) else str(ended)

    def settings(self) -> dict[str, Any]:
        """Every setting of the run (solver options as ``solver.knob``), from its config."""
        config = json.loads(self.row.get("config_json") or "{}")
        options = config.pop("solver_options", None) or {}
        solver = config.get("solver", self.row.get("solver"))
        settings = {**config, **{f"{solver}.{k}": v for k, v in options.items()}}
        settings["source"] = self.row.get("source")
        return settings

    def results(self) -> dict[str, float]:
        row = self.row
        return {k: float(row[k]) for k in RESULT_COLUMNS if isinstance(row.get(k), int | float)}

    def curve_points(self) -> Iterator[tuple[int, dict[str, float]]]:
        """(meta-step, {column: value}) per evaluation point. Empty and non-finite values
        are left out: a column that does not apply to the solver is stored as NaN, and a
        diverged run's last point says nothing a tracker can draw (its status says it)."""
        for point in self.curves:
            values = {
                k: float(v)
                for k, v in point.items()
                if k not in CURVE_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
            }
            yield int(point["step"]), {k: v for k, v in values.items() if math.isfinite(v)}

    def tags(self) -> dict[str, str]:
        return {
            f"raybench.{k}": str(self.row[k])[:5000]
            for k in TAG_COLUMNS
            if self.row.get(k) not in (None, "")
        }


def read_stored_run(store: ExperimentStore, run_id: str) -> StoredRun:
    from raybench.results.versions import upgrade

    (row,) = upgrade(pq.read_table(store.path("runs", run_id))).to_pylist()
    curves_path = store.path("curves", run_id)
    curves = upgrade(pq.read_table(curves_path)).to_pylist() if curves_path.exists() else []
    return StoredRun(row, sorted(curves, key=lambda c: c["step"]))


class Tracker(Protocol):
    name: str

    def log_run(self, run: StoredRun) -> bool:
        """Log the run unless this stored version of it is logged already; whether it was."""
        ...

    def close(self) -> None: ...


class Trackers:
    """The trackers of one command, each left out after its first failure."""

    def __init__(self, trackers: Iterable[Tracker]) -> None:
        self.active = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.active)

    def log_run(self, store: ExperimentStore, run_id: str) -> None:
        if not self.active:
            return
        try:
            run = read_stored_run(store, run_id)
        except Exception as exc:  # a store the tracker cannot read: the run is stored
            warn(f"could not read run {run_id} back for the trackers ({exc})")
            return
        for tracker in list(self.active):
            try:
                with quiet_libraries():
                    tracker.log_run(run)
            except Exception as exc:
                self.active.remove(tracker)
                warn(failure(tracker.name, exc))

    def close(self) -> None:
        for tracker in self.active:
            with contextlib.suppress(Exception):
                tracker.close()
        self.active = []


def open_trackers(spec: TrackerSpec | None, store: ExperimentStore) -> Trackers | None:
    """The spec's trackers for this experiment; one that cannot start warns and is left out."""
    if not spec:
        return None
    opened: list[Tracker] = []
    for name in spec.names:
        try:
            with quiet_libraries():
                if name == "mlflow":
                    from raybench.trackers.mlflow_tracker import MLflowTracker

                    opened.append(MLflowTracker(store, spec.uri))
                else:
                    from raybench.trackers.tensorboard_tracker import TensorBoardTracker

                    opened.append(TensorBoardTracker(store))
        except Exception as exc:
            warn(failure(name, exc))
    return Trackers(opened)


class TrackedStore(ExperimentStore):
    """The experiment's store, whose every stored run is then logged to the trackers."""

    def __init__(self, store: ExperimentStore, trackers: Trackers) -> None:
        super().__init__(store.root, store._warn)
        self._warned = store._warned  # a problem already reported is not repeated
        self.trackers = trackers

    def write_run(self, result: RunResult, *, source: str = "preset") -> Any:
        path = super().write_run(result, source=source)
        self.trackers.log_run(self, result.config.run_id)
        return path
