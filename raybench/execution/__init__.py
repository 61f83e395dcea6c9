"""Where runs execute, behind one call: ``execute(configs, ...)``.

``inline`` trains one run after another in this process (debugging, and the reference the
other back end must agree with); ``ray`` trains each run on its own Ray actor holding a
slice of a GPU (or CPUs), on a local embedded Ray or a cluster. Either way the driver is
the single writer of the results store: workers return their results, the driver writes
each run's files once, atomically.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from raybench.config import RunConfig
from raybench.errors import ParameterError
from raybench.execution.options import BACKENDS as BACKENDS
from raybench.execution.options import DEFAULT_CONNECT_TIMEOUT_S as DEFAULT_CONNECT_TIMEOUT_S
from raybench.execution.options import ExecutionOptions as ExecutionOptions
from raybench.execution.options import RunSummary as RunSummary

if TYPE_CHECKING:
    from raybench.results import ExperimentStore


def check_local_devices(configs: Sequence[RunConfig], options: ExecutionOptions) -> None:
    """Runs that ask for CUDA on a machine without it are refused before anything starts
    (where this machine is the one that trains: inline, or an embedded Ray)."""
    if options.backend == "ray" and options.address is not None:
        return  # the cluster's GPUs are checked once connected
    if any(c.device == "cuda" or c.cuda_graph for c in configs):
        import torch

        if torch.cuda.is_available():
            return
        if any(c.device == "cuda" for c in configs):
            raise ParameterError(
                "device=cuda was asked for but torch sees no CUDA device here; use {device} "
                "auto or cpu, or a machine (or {address} cluster) with a GPU"
            )
        raise ParameterError(
            "cuda_graph=true needs a CUDA device and torch sees none here: set it false "
            "({settings} cuda_graph=false), or use a machine (or {address} cluster) with a GPU"
        )


def execute(
    configs: Sequence[RunConfig],
    store: ExperimentStore,
    console: Console,
    options: ExecutionOptions,
    data_dir: Path | None = None,
    *,
    sources: Mapping[str, str] | None = None,
) -> list[RunSummary]:
    """Train, test and store every config not already finished in the store (unless
    ``rerun``). Failed runs are stored with their error; the others go on. A run another
    driver is training (it holds the run's lock) is left to it. ``sources`` overrides the
    options' source per run id (a resume of several commands' runs)."""
    from raybench.data import load_omniglot
    from raybench.execution.storing import ResultWriter
    from raybench.results.locks import RunLocks, holder, lock_path
    from raybench.results.plans import record_plan
    from raybench.results.store import ensure_writable
    from raybench.trackers import TrackedStore, open_trackers

    configs = list({c.run_id: c for c in configs}.values())
    check_local_devices(configs, options)
    ensure_writable(store.root)
    data = load_omniglot(data_dir)  # fail early, and build the cache once for local workers
    finished = set() if options.rerun else store.finished_ids()
    # every run already stored: nothing to train, so no Ray to start (seconds, a cluster)
    all_stored = bool(configs) and {c.run_id for c in configs} <= finished
    with contextlib.ExitStack() as stack:
        if options.backend == "ray" and not all_stored:
            from raybench.execution.ray_backend import check_cluster_devices, ray_session

            stack.enter_context(
                ray_session(options.address, options.dashboard, options.connect_timeout)
            )
            check_cluster_devices(configs)
        # from here on the command is under way: its plan is recorded for --resume
        record_plan(store, configs, options.source, sources)
        locks = stack.enter_context(RunLocks(store.root))
        todo: list[RunConfig] = []
        skipped: list[RunSummary] = []
        busy: list[RunSummary] = []
        for config in configs:
            if config.run_id in finished:
                skipped.append(RunSummary(config.run_id, "skipped"))
            elif not locks.acquire(config.run_id):
                who = holder(lock_path(store.root, config.run_id))
                busy.append(RunSummary(config.run_id, "busy", f"being trained by {who}"))
            elif not options.rerun and store.is_finished(config.run_id):  # finished meanwhile
                locks.release(config.run_id)
                skipped.append(RunSummary(config.run_id, "skipped"))
            else:
                todo.append(config)
        if skipped:
            console.print(
                f"[dim]{len(skipped)} run(s) already stored, skipped (--rerun trains them again)[/]"
            )
        if busy:
            console.print(
                f"[yellow]{len(busy)} run(s) left to another raybench training them on this "
                f"store ({escape(busy[0].error or '')}); run this command again once it has "
                "finished to store anything it leaves undone[/]"
            )
        if options.rerun:  # trained again from step 0, not continued
            for config in todo:
                store.progress_path(config.run_id).unlink(missing_ok=True)
        trackers = open_trackers(options.tracker, store)
        if trackers is not None:  # the driver logs each run from the store once it is written
            stack.callback(trackers.close)
            for summary in skipped:
                trackers.log_run(store, summary.run_id)
            store = TrackedStore(store, trackers)
        if not todo:
            return skipped + busy
        writer = ResultWriter(store, console, options.source, sources)
        if options.backend == "inline":
            from raybench.execution.inline import run_inline

            threads = max(1, int(options.cpus_per_run))
            done = run_inline(
                todo,
                data,
                writer,
                console,
                threads=threads,
                log_every=options.log_every,
                label_settings=options.label_settings,
            )
        else:
            from raybench.execution.ray_backend import run_on_ray

            done = run_on_ray(todo, writer, console, options, data_dir)
        writer.retry(force=True)
        writer.report_unstored()
        unstored = [
            RunSummary(s.run_id, "unstored", writer.errors[s.run_id])
            if s.run_id in writer.pending
            else s
            for s in done
        ]
        return skipped + busy + unstored
