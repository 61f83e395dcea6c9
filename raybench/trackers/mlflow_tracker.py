"""Stored runs into an MLflow tracking store (a local SQLite file by default).

One MLflow experiment per raybench experiment (same name), one MLflow run per stored run:
its settings as parameters, its curves as metrics ``curves/<column>`` at each evaluation's
meta-step, its final results as ``results/<column>``, what it is (solver, status, seed,
error, ...) as ``raybench.*`` tags, and its true start and end times. The tag
``raybench.logged`` marks a run logged in full; a rerun (a new stored version) is logged as
a new MLflow run, a half-logged one (a crash while logging) is replaced.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from raybench.results import ExperimentStore

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from raybench.trackers import StoredRun  # the package imports this module

LOGGED = "raybench.logged"
MAX_PARAMS = 100  # MLflow's limits on one log_batch call
MAX_METRICS = 1000


def default_uri(store: ExperimentStore) -> str:
    """``sqlite:///<experiment>/mlflow.db``: a real MLflow backend beside the results."""
    store.root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(store.root / 'mlflow.db').resolve()}"


def ensure_experiment(client: MlflowClient, store: ExperimentStore, local: bool) -> str:
    """The MLflow experiment named after the raybench one, created (artifacts under the
    experiment folder when the store is local) or restored if deleted."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(store.name)
    if found is None:
        artifacts = (store.root / "mlflow-artifacts").resolve().as_uri() if local else None
        try:
            return client.create_experiment(
                store.name,
                artifact_location=artifacts,
                tags={"raybench.store": str(store.root.resolve())},
            )
        except MlflowException:  # created meanwhile by another process
            found = client.get_experiment_by_name(store.name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def _ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


class MLflowTracker:
    name = "mlflow"

    def __init__(self, store: ExperimentStore, uri: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri or default_uri(store)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = ensure_experiment(self.client, store, local=uri is None)
        self.store_root = str(store.root.resolve())

    def _versions(self, run_id: str) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`raybench.run_id` = '{run_id}'",
            max_results=1000,
        )

    def log_run(self, run: StoredRun) -> bool:
        from mlflow.entities import Metric, Param, RunTag

        earlier = self._versions(run.run_id)
        if any(r.data.tags.get(LOGGED) == run.ended for r in earlier):
            return False
        for partial in (r for r in earlier if LOGGED not in r.data.tags):
            self.client.delete_run(partial.info.run_id)
        row = run.row
        started, ended = _ms(row.get("started_at")), _ms(row.get("ended_at"))
        tags = {**run.tags(), "raybench.kind": "run", "raybench.store": self.store_root}
        created = self.client.create_run(
            self.experiment_id, start_time=started, tags=tags, run_name=run.run_id
        )
        mlflow_id = created.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in sorted(run.settings().items())]
        metrics = []
        now = int(time.time() * 1000)
        for step, values in run.curve_points():
            seconds = values.get("train_time_s")
            stamp = started + int(1000 * seconds) if started and seconds is not None else now
            metrics += [Metric(f"curves/{k}", v, stamp, step) for k, v in values.items()]
        steps = int(row.get("steps_done") or 0)
        metrics += [
            Metric(f"results/{k}", v, ended or now, steps) for k, v in run.results().items()
        ]
        for i in range(0, len(params), MAX_PARAMS):
            self.client.log_batch(mlflow_id, params=params[i : i + MAX_PARAMS])
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(mlflow_id, metrics=metrics[i : i + MAX_METRICS])
        self.client.log_batch(mlflow_id, tags=[RunTag(LOGGED, run.ended)])
        status = "FAILED" if row.get("status") == "failed" else "FINISHED"
        self.client.set_terminated(mlflow_id, status, end_time=ended)
        return True

    def close(self) -> None:
        pass
