"""Runs on Ray actors: one actor per run, holding a slice of a GPU (or some CPUs).

Placement, retries and the cluster are Ray's: an actor asks for ``num_gpus`` (a fraction,
so several solvers train side by side on one GPU), Ray restarts a worker process that dies
(``max_restarts``) and retries its run (``max_task_retries``). The driver is the only writer
of the results store: each actor returns its ``RunResult`` and the driver writes it once.
Progress travels through a small hub actor that workers notify at most about once a second
(fire-and-forget, never per step) and the driver polls twice a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
import torch
from ray._private import ray_constants
from rich.console import Console

from raybench.config import RunConfig
from raybench.execution import ExecutionOptions, RunSummary
from raybench.execution.progress import RunProgress
from raybench.execution.ray_auth import token_notice_silenced
from raybench.results import ExperimentStore
from raybench.train import Progress, RunResult

HUB_PREFIX = "raybench-progress-"
LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's services bind to loopback


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Make the Ray started inside bind its services to 127.0.0.1, not every interface.

    Ray on Linux listens on all interfaces; with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` its
    node address is loopback and its servers bind there. Ray reads the variable once, at
    import: the processes Ray spawns see it in their environment, and for this process,
    which imported Ray already, the constant it was read into is set as well. Both are
    restored on exit, so a later connection to a real cluster is unaffected."""
    previous_env = os.environ.get(LOCAL_ONLY)
    previous_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[LOCAL_ONLY] = "0"
    if previous_flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop(LOCAL_ONLY, None)
        else:
            os.environ[LOCAL_ONLY] = previous_env
        if previous_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = previous_flag


@contextlib.contextmanager
def ray_session(address: str | None, dashboard: bool = False) -> Iterator[bool]:
    """Connect to ``address``, or start an embedded local Ray bound to localhost (no
    dashboard unless asked) and shut it down afterwards. A Ray already initialised in this
    process (a test's cluster, a notebook) is used as it is. Yields whether it is local."""
    if ray.is_initialized():
        yield False
        return
    local = loopback_only() if address is None else contextlib.nullcontext()
    quiet = token_notice_silenced() if address is None else contextlib.nullcontext()
    with local, quiet:
        ray.init(
            address=address,
            include_dashboard=dashboard if address is None else None,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        try:
            yield address is None
        finally:
            ray.shutdown()


@ray.remote(num_cpus=0)
class ProgressHub:
    """The latest progress of every run, written by workers, read by the driver."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}

    def update(self, run_id: str, fields: dict[str, Any]) -> None:
        self.state[run_id] = {**self.state.get(run_id, {}), **fields}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.state


class RunWorker:
    """Trains one run. Made a Ray actor with its resources in :func:`run_on_ray`."""

    def __init__(self, hub_name: str, threads: int) -> None:
        # looked up by name: a handle argument would live in the object store, which a
        # restarted actor cannot rely on
        self.hub = ray.get_actor(hub_name)
        torch.set_num_threads(threads)  # the CPUs Ray gave this actor, not the machine's
        context = ray.get_runtime_context()
        self.node = f"{socket.gethostname()}:{context.get_node_id()[:8]}"

    def train(
        self, config_json: str, data_dir: str | None, resources: str, resume: str | None = None
    ) -> RunResult:
        from raybench.configfile import config_from_json
        from raybench.data import load_omniglot
        from raybench.train import train

        config = config_from_json(config_json)
        data = load_omniglot(data_dir)
        last = [0.0]
        pid = os.getpid()

        def notify(event: Progress) -> None:
            now = time.monotonic()
            at_eval = event.step % config.eval_every == 0
            if event.phase != "train" or at_eval or now - last[0] > 1.0:
                last[0] = now
                fields = {
                    "step": event.step,
                    "total": event.total,
                    "val_acc": event.val_acc,
                    "phase": event.phase,
                    "ms_per_step": event.ms_per_step,
                    "node": self.node,
                    "pid": pid,
                }
                self.hub.update.remote(event.run_id, fields)  # not awaited: no round trip

        # a retry after this actor died calls this again and continues from the saved state
        result = train(config, data, progress=notify, resume=Path(resume) if resume else None)
        result.node, result.resources = self.node, resources
        return result


MAX_RUNS_PER_GPU = 8  # Ray shares compute, not memory: beyond this, runs wait their turn


def gpu_share(total_gpus: float, n_concurrent: int) -> float:
    """The visible GPUs divided among the concurrent runs, but never less than
    1/MAX_RUNS_PER_GPU of a card: a paper-preset MAML run holds a few GiB, and two dozen
    of them on one card would run it out of memory; Ray queues the rest."""
    if total_gpus <= 0:
        return 0.0
    share = max(1 / MAX_RUNS_PER_GPU, total_gpus / max(1, n_concurrent))
    return min(1.0, int(1000 * share) / 1000)


def gpus_per_run(options: ExecutionOptions, n_concurrent: int) -> float:
    """The explicit share, or :func:`gpu_share` of the cluster's GPUs."""
    if options.gpus_per_run is not None:
        return options.gpus_per_run
    return gpu_share(ray.cluster_resources().get("GPU", 0.0), n_concurrent)


def failed_result(config: RunConfig, error: BaseException, last: dict[str, Any]) -> RunResult:
    """The record of a run whose worker kept dying (or could not start)."""
    from raybench.solvers import solver_class

    text = " ".join(str(error).split()) or type(error).__name__
    return RunResult(
        config=config,
        family=solver_class(config.solver).family,
        status="failed",
        steps_done=int(last.get("step") or 0),
        node=str(last.get("node") or ""),
        error=f"{type(error).__name__}: {text}"[:500],
    )


def run_on_ray(
    configs: Sequence[RunConfig],
    store: ExperimentStore,
    console: Console,
    options: ExecutionOptions,
    data_dir: Path | None = None,
) -> list[RunSummary]:
    """Every config on its own actor; results stored by this process as they arrive."""
    summaries: list[RunSummary] = []
    with ray_session(options.address, options.dashboard):
        concurrent = min(len(configs), options.max_concurrent or len(configs))
        gpus = gpus_per_run(options, concurrent)
        cpus = options.cpus_per_run
        resources = f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else "")
        hub_name = f"{HUB_PREFIX}{uuid.uuid4().hex[:8]}"
        hub = ProgressHub.options(name=hub_name).remote()
        worker = ray.remote(RunWorker).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=options.max_retries,
            max_task_retries=options.max_retries,
        )
        console.print(
            f"[dim]ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
            f"{ray.cluster_resources().get('GPU', 0):g} GPUs; each run gets {resources}[/]"
        )
        queue = list(configs)
        pending: dict[Any, tuple[RunConfig, Any]] = {}
        state: dict[str, dict[str, Any]] = {}
        with RunProgress(
            console,
            len(configs),
            log_every=options.log_every,
            label_settings=options.label_settings,
        ) as progress:
            for config in configs:
                progress.add(config)
            while queue or pending:
                while queue and len(pending) < concurrent:
                    config = queue.pop(0)
                    actor = worker.remote(hub_name, max(1, int(cpus)))
                    resume = str(store.progress_path(config.run_id).resolve())
                    ref = actor.train.remote(config.to_json(), _str(data_dir), resources, resume)
                    pending[ref] = (config, actor)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                state = ray.get(hub.snapshot.remote())
                for run_id, fields in state.items():
                    if run_id in progress.tasks and fields.get("phase") != "done":
                        progress.update(_event(run_id, fields), node=fields.get("node", ""))
                for ref in ready:
                    config, actor = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = failed_result(config, exc, state.get(config.run_id, {}))
                    store.write_run(result, source=options.source)
                    ray.kill(actor)
                    progress.finish(config.run_id, result.status, result.steps_done)
                    summaries.append(RunSummary(config.run_id, result.status, result.error))
                    if result.error:
                        console.print(f"[red]{progress.label(config)}: {result.error}[/]")
    return summaries


def _event(run_id: str, fields: dict[str, Any]) -> Progress:
    return Progress(
        run_id,
        int(fields["step"]),
        int(fields["total"]),
        fields.get("val_acc"),
        fields["phase"],
        ms_per_step=fields.get("ms_per_step"),
    )


def _str(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())
