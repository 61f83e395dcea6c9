"""Runs on Ray actors: one actor per run, holding a slice of a GPU (or some CPUs).

Placement, retries and the cluster are Ray's: an actor asks for ``num_gpus`` (a fraction,
so several solvers train side by side on one GPU), Ray restarts a worker process that dies
(``max_restarts``) and retries its run (``max_task_retries``). The driver is the only writer
of the results store: each actor returns its ``RunResult`` and the driver writes it once.
Progress travels through a small hub actor that workers notify at most about once a second
(fire-and-forget, never per step) and the driver polls twice a second. Progress is advisory:
the hub restarts if it dies, and while it is gone the runs train and are stored as before.

A worker belongs to the driver that started it: on the driver's machine it watches the
driver process and exits the moment it is gone (killed, say), and it never writes a run's
training state once the driver is gone, since a new driver may be continuing that run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
import torch
from rich.console import Console
from rich.markup import escape

from raybench import signals
from raybench.config import RunConfig
from raybench.execution.options import ExecutionOptions, RunSummary
from raybench.execution.progress import RunProgress
from raybench.execution.session import (  # noqa: F401 - re-exported
    LOCAL_ONLY,
    check_cluster_devices,
    loopback_only,
    ray_session,
)
from raybench.execution.storing import ResultWriter
from raybench.resume import load_state
from raybench.train import Progress, RunResult

HUB_PREFIX = "raybench-progress-"
WATCH_EVERY_S = 0.2  # how often a worker looks for its driver


@ray.remote(num_cpus=0)
class ProgressHub:
    """The latest progress of every run, written by workers, read by the driver."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}

    def update(self, run_id: str, fields: dict[str, Any]) -> None:
        self.state[run_id] = {**self.state.get(run_id, {}), **fields}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.state


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: its start time in clock ticks), None if there
    is no such process (or it has ended and awaits its parent); with the pid, it names one
    process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has ended


def driver_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def owner_check(driver: dict[str, Any] | None) -> Any:
    """A function telling whether the driver is still there, or None where this process
    cannot see it (another machine: Ray ends a dead driver's actors there)."""
    if not driver or driver.get("host") != socket.gethostname():
        return None
    pid, start = int(driver["pid"]), driver.get("start")

    def alive() -> bool:
        now = process_start(pid)
        return now is not None and (start is None or now == start or now == "?")

    # not visible from here although it started this worker (another pid namespace on a
    # host of the same name): this process cannot tell, so it does not watch
    return alive if alive() else None


def watch_driver(alive: Any) -> None:
    """Exit this worker as soon as its driver is gone: no orphan keeps training."""

    def watch() -> None:
        while alive():
            time.sleep(WATCH_EVERY_S)
        os._exit(1)

    threading.Thread(target=watch, name="raybench-driver-watch", daemon=True).start()


class RunWorker:
    """Trains one run. Made a Ray actor with its resources in :func:`run_on_ray`."""

    def __init__(self, hub_name: str, threads: int, driver: dict[str, Any] | None = None) -> None:
        from raybench import resume

        alive = owner_check(driver)
        if alive is not None:
            resume.watch_owner(alive)  # never save a state for a driver that is gone
            watch_driver(alive)
        # looked up by name: a handle argument would live in the object store, which a
        # restarted actor cannot rely on. Optional: progress is advisory.
        try:
            self.hub = ray.get_actor(hub_name)
        except Exception:
            self.hub = None
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
            if self.hub is not None and (event.phase != "train" or at_eval or now - last[0] > 1):
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
                with contextlib.suppress(Exception):  # a lost hub never stops a run
                    self.hub.update.remote(event.run_id, fields)  # not awaited: no round trip

        # a retry after this actor died calls this again and continues from the saved state
        result = train(config, data, progress=notify, resume=Path(resume) if resume else None)
        result.node, result.resources = self.node, resources
        return result


class ProgressFeed:
    """The driver's view of the hub: polled without blocking, never fatal. If the hub
    dies, Ray restarts it (empty) and the workers' updates fill it again; until then the
    last known progress stands."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.name = f"{HUB_PREFIX}{uuid.uuid4().hex[:8]}"
        self.hub = ProgressHub.options(name=self.name, max_restarts=-1).remote()
        self.pending: Any = None
        self.state: dict[str, dict[str, Any]] = {}
        self.lost = False

    def poll(self) -> dict[str, dict[str, Any]]:
        """Merge in the hub's latest snapshot, if one has arrived."""
        try:
            if self.pending is None:
                self.pending = self.hub.snapshot.remote()
            ready, _ = ray.wait([self.pending], timeout=0)
            if ready:
                ref, self.pending = self.pending, None
                for run_id, fields in ray.get(ref).items():
                    self.state[run_id] = {**self.state.get(run_id, {}), **fields}
                if self.lost:
                    self.console.print("[dim]progress display back[/]")
                    self.lost = False
        except ray.exceptions.RayError:
            self.pending = None
            if not self.lost:
                self.console.print(
                    "[yellow]progress display lost (its actor died; Ray restarts it): "
                    "training and storing go on[/]"
                )
                self.lost = True
        return self.state


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


def failed_result(
    config: RunConfig, error: BaseException, last: dict[str, Any], saved_step: int = 0
) -> RunResult:
    """The record of a run whose worker kept dying (or could not start). Its steps are
    those of its saved state where that is further than the driver's last progress
    snapshot, which lags the worker by up to a poll."""
    from raybench.solvers import solver_class

    text = " ".join(str(error).split()) or type(error).__name__
    return RunResult(
        config=config,
        family=solver_class(config.solver).family,
        status="failed",
        steps_done=max(int(last.get("step") or 0), saved_step),
        node=str(last.get("node") or ""),
        error=f"{type(error).__name__}: {text}"[:500],
    )


def run_on_ray(
    configs: Sequence[RunConfig],
    writer: ResultWriter,
    console: Console,
    options: ExecutionOptions,
    data_dir: Path | None = None,
) -> list[RunSummary]:
    """Every config on its own actor; results stored by this process as they arrive. Runs
    in the Ray session the caller opened (``execute`` does)."""
    summaries: list[RunSummary] = []
    store = writer.store
    with ray_session(options.address, options.dashboard, options.connect_timeout):
        concurrent = min(len(configs), options.max_concurrent or len(configs))
        gpus = gpus_per_run(options, concurrent)
        cpus = options.cpus_per_run
        resources = f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else "")
        feed = ProgressFeed(console)
        worker = ray.remote(RunWorker).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=options.max_retries,
            max_task_retries=options.max_retries,
        )
        driver = driver_identity()
        console.print(
            f"[dim]ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
            f"{ray.cluster_resources().get('GPU', 0):g} GPUs; each run gets "
            f"{escape(str(resources))}[/]"
        )
        queue = list(configs)
        pending: dict[Any, tuple[RunConfig, Any]] = {}
        with (
            signals.interrupts_remembered(),
            RunProgress(
                console,
                len(configs),
                log_every=options.log_every,
                label_settings=options.label_settings,
            ) as progress,
        ):
            for config in configs:
                progress.add(config)
            while queue or pending:
                signals.raise_if_interrupted()
                while queue and len(pending) < concurrent:
                    config = queue.pop(0)
                    actor = worker.remote(feed.name, max(1, int(cpus)), driver)
                    resume = str(store.progress_path(config.run_id).resolve())
                    ref = actor.train.remote(config.to_json(), _str(data_dir), resources, resume)
                    pending[ref] = (config, actor)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                state = feed.poll()
                for run_id, fields in state.items():
                    if run_id in progress.tasks and fields.get("phase") != "done":
                        progress.update(_event(run_id, fields), node=fields.get("node", ""))
                for ref in ready:
                    config, actor = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        saved = load_state(store.progress_path(config.run_id), config)
                        result = failed_result(
                            config, exc, state.get(config.run_id, {}), saved.step if saved else 0
                        )
                    writer.write(result, progress.label(config))
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                    progress.finish(config.run_id, result.status, result.steps_done)
                    summaries.append(RunSummary(config.run_id, result.status, result.error))
                    if result.error:
                        label = escape(progress.label(config))
                        console.print(f"[red]{label}: {escape(result.error)}[/]")
                writer.retry()
    return summaries


def _event(run_id: str, fields: dict[str, Any]) -> Progress:
    return Progress(
        run_id,
        int(fields.get("step") or 0),
        int(fields.get("total") or 0),
        fields.get("val_acc"),
        fields.get("phase") or "train",
        ms_per_step=fields.get("ms_per_step"),
    )


def _str(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())
