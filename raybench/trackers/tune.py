"""Sweep trials to the trackers through Ray Tune's own logger callbacks.

Tune calls its callbacks in the driver, so the driver stays the only writer here too.
:class:`TrialsToMLflow` is Ray's ``MLflowLoggerCallback`` and :class:`TrialsToTensorBoard`
Tune's ``TBXLoggerCallback`` (event files in each trial's folder under ``tune/``), with two
changes: results are keyed by meta-step (the trial's ``step``) rather than Tune's iteration
count, and a failure warns once and switches the callback off instead of stopping the sweep.
"""

from __future__ import annotations

from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL

from raybench.results import ExperimentStore
from raybench.trackers import TrackerSpec, failure, quiet_libraries, warn

# what a trial's result holds that is worth a curve (Tune adds pids, timestamps, ...)
TRIAL_METRICS = ("val_acc", "time_total_s")


def by_meta_step(result: dict[str, Any]) -> dict[str, Any]:
    """Tune's loggers key a result by ``timesteps_total`` when present: the meta-step."""
    step = result.get("step") or result.get(TRAINING_ITERATION)
    return {**result, TIMESTEPS_TOTAL: step}


class _Guarded:
    """Each logging hook guarded: the first failure warns and turns the callback off."""

    tracker = ""
    broken = False

    def _guard(self, hook: Any, *args: Any, **kwargs: Any) -> None:
        if self.broken:
            return
        try:
            with quiet_libraries():
                hook(*args, **kwargs)
        except Exception as exc:
            self.broken = True
            warn(failure(self.tracker, exc))


class TrialsToMLflow(_Guarded, MLflowLoggerCallback):
    """Ray's MLflow logger: one MLflow run per trial, its sampled parameters, and the
    validation accuracy (and time) at every evaluation."""

    tracker = "mlflow"

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._guard(super().setup, *args, **kwargs)

    def log_trial_start(self, trial: Any) -> None:
        self._guard(super().log_trial_start, trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        kept = {k: result[k] for k in (*TRIAL_METRICS, "step") if k in result}
        self._guard(super().log_trial_result, iteration, trial, by_meta_step(kept))

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._guard(super().log_trial_end, trial, failed)


def trials_to_mlflow(store: ExperimentStore, uri: str | None, solver: str) -> TrialsToMLflow | None:
    """The MLflow callback for this experiment's store; the MLflow experiment is made here,
    in the driver, with its artifacts under the experiment folder, before Tune looks it up."""
    from raybench.trackers.mlflow_tracker import default_uri, ensure_experiment

    tracking_uri = uri or default_uri(store)
    try:
        with quiet_libraries():
            from mlflow.tracking import MlflowClient

            ensure_experiment(MlflowClient(tracking_uri=tracking_uri), store, local=uri is None)
    except Exception as exc:
        warn(failure("mlflow", exc))
        return None
    tags = {"raybench.kind": "trial", "raybench.solver": solver, "raybench.experiment": store.name}
    return TrialsToMLflow(tracking_uri=tracking_uri, experiment_name=store.name, tags=tags)


class TrialsToTensorBoard(_Guarded, TBXLoggerCallback):
    """Tune's TensorBoard logger (``tune/<solver>/<trial>/events.out.tfevents.*``)."""

    tracker = "tensorboard"

    def log_trial_start(self, trial: Any) -> None:
        self._guard(super().log_trial_start, trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        self._guard(super().log_trial_result, iteration, trial, by_meta_step(result))

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._guard(super().log_trial_end, trial, failed)


def tune_callbacks(spec: TrackerSpec | None, store: ExperimentStore, solver: str) -> list[Any]:
    """The Tune callbacks that log a solver's trials to the spec's trackers."""
    callbacks: list[Any] = []
    if spec and "mlflow" in spec.names:
        callback = trials_to_mlflow(store, spec.uri, solver)
        if callback is not None:
            callbacks.append(callback)
    if spec and "tensorboard" in spec.names:
        callbacks.append(TrialsToTensorBoard())
    return callbacks
