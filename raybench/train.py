"""The meta-training loop: outer Adam, periodic validation, final test, divergence.

This is the only caller of solvers. It never synchronises with the device inside the loop
except at evaluation points (and the divergence check that rides on them), so the GPU can
run ahead; step times are measured per evaluation interval, between those syncs.
"""

from __future__ import annotations

import math
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor

from raybench import pairing, rendezvous
from raybench.assumptions import Probe
from raybench.code_version import code_fingerprint
from raybench.config import RunConfig
from raybench.data import OmniglotImages
from raybench.metrics import METRICS, PERCENT, TASK_METRICS, TRAIN_METRICS
from raybench.models import Params
from raybench.resume import TrainingState, load_state, save_state
from raybench.run_setup import RunSetup, build_run
from raybench.runtime import PeakMemory, device_name, git_commit, kernel_set, resolve_device
from raybench.solvers import Solver
from raybench.speed import MetaStep, meta_step, outer_step
from raybench.tasks import TaskIndex, TaskSampler

STATUSES = ("completed", "diverged", "failed")
# The per-task test results stored in the ``tasks`` table (accuracies in %, losses in nats).


@dataclass(frozen=True)
class Progress:
    """What a progress display needs; plain Python numbers, never device tensors."""

    run_id: str
    step: int
    total: int
    val_acc: float | None = None  # %, at the last evaluation
    phase: str = "train"  # train | test | done
    # over the current evaluation interval as the host sees it; exact (device synchronised)
    # at evaluation points, where the interval's time is measured
    ms_per_step: float | None = None


ProgressHook = Callable[[Progress], None]


@dataclass
class RunResult:
    """Everything a run produced; ``raybench.results`` turns it into Parquet rows.
    Accuracies are in percent (0-100), like every stored accuracy."""

    config: RunConfig
    family: str
    status: str = "completed"
    steps_done: int = 0
    curves: list[dict[str, float]] = field(default_factory=list)
    final_val_acc: float | None = None
    test_acc_mean: float | None = None
    test_acc_ci95: float | None = None
    test_tasks_n: int = 0
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    ms_per_step: float | None = None
    peak_memory_mb: float | None = None
    memory_kind: str = ""
    device: str = ""
    kernels: str = ""  # raybench.runtime.kernel_set: what rounded its float arithmetic
    n_params: int = 0
    git_commit: str = ""
    code_fingerprint: str = ""  # raybench.code_version: the training path's source
    node: str = ""  # host (and Ray node) that ran it
    resources: str = ""  # what the run was given, e.g. "1 CPU, 0.25 GPU"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    params: Params | None = None
    resumed_from_step: int = 0  # > 0: continued from a saved state after an interruption
    # Per fixed test task, in task order: TASK_METRICS, and each task's identity
    # (``TaskIndex.keys``) so that pairing across runs can be checked, not assumed.
    tasks: dict[str, list[float]] | None = None
    task_keys: list[str] | None = None
    # What pairing this run with other runs of its seed relies on (``raybench.pairing``).
    init_fingerprint: str | None = None
    stream_fingerprint: str | None = None


def evaluate(
    solver: Solver,
    params: Params,
    sampler: TaskSampler,
    index: TaskIndex,
    steps: int,
    chunk: int,
    adaptation: str = "plain",
) -> dict[str, Tensor]:
    """Per-task metrics over a fixed task set, ``chunk`` tasks at a time (bounded memory),
    accuracies in percent."""
    parts: list[dict[str, Tensor]] = []
    for start in range(0, len(index), chunk):
        batch = sampler.gather(index.slice(start, start + chunk))
        parts.append(solver.evaluate(params, batch, steps, adaptation=adaptation))
    return {k: torch.cat([p[k] for p in parts]) * PERCENT.get(k, 1.0) for k in parts[0]}


def mean_ci95(values: Tensor) -> tuple[float, float]:
    """Mean and 1.96 * std / sqrt(n) half-width of a 95% normal interval."""
    values = values.double()
    n = values.numel()
    std = values.std(unbiased=True).item() if n > 1 else 0.0
    return values.mean().item(), 1.96 * std / math.sqrt(n)


def train(
    config: RunConfig,
    data: OmniglotImages,
    progress: ProgressHook | None = None,
    *,
    test: bool = True,
    resume: Path | None = None,
) -> RunResult:
    """Meta-train one solver with one seed, then test it (unless ``test`` is off: a search
    trial is judged on validation tasks only). Never raises for a failing run: the result
    says ``failed`` (with the error) or ``diverged``, with the curves so far.

    With ``resume``, the training state is saved there at every evaluation point, and a
    state already there for this config is continued from (see ``raybench.resume``)."""
    started = time.perf_counter()
    result = RunResult(
        config=config,
        family="",
        started_at=datetime.now(timezone.utc),
        git_commit=git_commit(),  # the code that runs, even if the tree changes meanwhile
        code_fingerprint=code_fingerprint(),
        node=socket.gethostname(),
    )
    notify = progress or (lambda _p: None)
    try:
        _train(config, data, result, notify, test, resume, started)
    except Exception as exc:  # a run must never take the benchmark down with it
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    result.wall_time_s += time.perf_counter() - started  # after earlier segments, if resumed
    result.ended_at = datetime.now(timezone.utc)
    notify(
        Progress(config.run_id, result.steps_done, config.meta_steps, result.final_val_acc, "done")
    )
    return result


@dataclass
class LoopState:
    """Everything the rest of a run depends on after a step: the live meta-parameters,
    outer optimiser and task generator, and the record so far. Resume saves it whole at
    every evaluation point and restores it whole; its fields are those of the stored
    :class:`raybench.resume.TrainingState`, one for one."""

    step: int  # the last meta-step done
    params: Params
    optimiser: torch.optim.Optimizer
    generator: torch.Generator
    curves: list[dict[str, float | None]] = field(default_factory=list)
    train_time_s: float = 0.0
    interval_ms: list[float] = field(default_factory=list)
    val_acc: float | None = None  # %, at the last evaluation
    wall_time_s: float = 0.0  # of the run's earlier segments, if resumed
    peak_memory_mb: float | None = None  # of the run's earlier segments, if resumed
    started_at: str = ""  # ISO time of the run's first start

    def saved(self, wall_time_s: float, peak_memory_mb: float) -> TrainingState:
        """The state as stored, with the wall time and peak memory of the run so far."""
        return TrainingState(
            step=self.step,
            params=self.params,
            optimiser=self.optimiser.state_dict(),
            generator=self.generator.get_state(),
            curves=self.curves,
            train_time_s=self.train_time_s,
            interval_ms=self.interval_ms,
            val_acc=self.val_acc,
            wall_time_s=wall_time_s,
            peak_memory_mb=peak_memory_mb,
            started_at=self.started_at,
        )

    def restore(self, state: TrainingState) -> None:
        """Continue from a stored state: every field of it, into the live objects."""
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(state.params[name])
        self.optimiser.load_state_dict(state.optimiser)
        self.generator.set_state(state.generator)
        self.step, self.curves = state.step, list(state.curves)
        self.train_time_s, self.interval_ms = state.train_time_s, list(state.interval_ms)
        self.val_acc, self.wall_time_s = state.val_acc, state.wall_time_s
        self.peak_memory_mb, self.started_at = state.peak_memory_mb, state.started_at


class Interval:
    """The training metrics of the steps since the last evaluation point, summed on the
    device: nothing here waits for it until :meth:`close`."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        n = len(TRAIN_METRICS) + 1  # and the meta-gradient's norm
        scales = [PERCENT.get(m, 1.0) for m in TRAIN_METRICS] + [1.0]
        self.scale = torch.tensor(scales, dtype=torch.float64, device=device)
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.sums = torch.zeros(n, dtype=torch.float64, device=device)
        self.nan = torch.tensor(math.nan, dtype=dtype, device=device)
        self.present = torch.ones(n, dtype=torch.bool, device=device)
        self.reported: list[bool] = []  # which metrics this solver reports in training
        self.restart()

    def restart(self) -> None:
        self.sums.zero_()
        self.steps, self.start = 0, time.perf_counter()

    def add(self, metrics: dict[str, Tensor], grad_norm: Tensor) -> None:
        if not self.reported:
            self.reported = [m in metrics for m in TRAIN_METRICS]
            self.present[: len(TRAIN_METRICS)] = torch.tensor(self.reported)
        step_means = torch.stack(
            [metrics[m].mean() if m in metrics else self.nan for m in TRAIN_METRICS] + [grad_norm]
        )
        self.finite &= (torch.isfinite(step_means) | ~self.present).all()  # no mask: no sync
        self.sums += step_means
        self.steps += 1

    def close(self, loop: LoopState) -> tuple[dict[str, float | None], bool]:
        """The interval's curve row and whether the run diverged: the sync point."""
        diverged = not bool(self.finite)
        elapsed = time.perf_counter() - self.start
        loop.train_time_s += elapsed
        loop.interval_ms.append(1000 * elapsed / self.steps)
        row: dict[str, float | None] = {"step": loop.step, "train_time_s": loop.train_time_s}
        means = (self.sums * self.scale / self.steps).tolist()
        row.update(  # a metric this solver does not report stays empty
            {
                f"train_{m}": v if on else None
                for m, v, on in zip(TRAIN_METRICS, means, self.reported)
            }
        )
        row["grad_norm"] = means[-1]
        row["ms_per_step"] = loop.interval_ms[-1]
        return row, diverged

    def ms_per_step(self, loop: LoopState) -> float:
        """As the host sees the open interval; the last interval's right after a close."""
        if not self.steps:
            return loop.interval_ms[-1]
        return 1000 * (time.perf_counter() - self.start) / self.steps


@dataclass
class Run:
    """One training run under way: its setup, loop state and the rest of its context."""

    setup: RunSetup
    loop: LoopState
    result: RunResult
    notify: ProgressHook
    memory: PeakMemory
    resume: Path | None
    started: float  # perf_counter at this segment's start
    probe: Probe | None = None
    step_fn: MetaStep | None = None  # built on the first batch: a CUDA graph needs its shapes

    @property
    def config(self) -> RunConfig:
        return self.setup.config

    def evaluate(self, part: str) -> dict[str, Tensor]:
        config = self.config
        return evaluate(
            self.setup.solver,
            self.loop.params,
            self.setup.tasks(part),
            self.setup.fixed_index(part),
            config.adapt_steps_eval,
            config.eval_batch,
            config.eval_adaptation,
        )

    def peak_mb(self) -> float:
        return max(self.loop.peak_memory_mb or 0.0, self.memory.read_mb())


def _train(
    config: RunConfig,
    data: OmniglotImages,
    result: RunResult,
    notify: ProgressHook,
    test: bool,
    resume: Path | None,
    started: float,
) -> None:
    run = _set_up(config, data, result, notify, resume, started)
    _restore(run)
    interval = Interval(run.setup.device, getattr(torch, config.dtype))
    hold = rendezvous.hold_for(config.run_id)  # None unless fault tests set gates
    try:
        for step in range(run.loop.step + 1, config.meta_steps + 1):
            _step(run, interval)
            if step % config.eval_every == 0 or step == config.meta_steps:
                row, diverged = interval.close(run.loop)
                if diverged:
                    _diverge(run, row)
                    break
                _validate(run, row)
                _checkpoint(run)
                interval.restart()
            ms = interval.ms_per_step(run.loop)
            notify(
                Progress(config.run_id, step, config.meta_steps, run.loop.val_acc, ms_per_step=ms)
            )
            if hold is not None:
                interval.start += hold(step)
    finally:
        _record(run)
    _finish(run, test)


def _set_up(
    config: RunConfig,
    data: OmniglotImages,
    result: RunResult,
    notify: ProgressHook,
    resume: Path | None,
    started: float,
) -> Run:
    """The run's device and memory instruments, its setup, what pairs it with other runs
    of its seed, and the assumption probe (implicit solvers only)."""
    device = resolve_device(config.device)
    result.device, result.kernels = device_name(device), kernel_set(device)
    memory = PeakMemory(device)
    memory.reset()
    result.memory_kind = memory.kind
    setup = build_run(config, data, device=device)
    solver, train_tasks = setup.solver, setup.tasks("train")
    result.family = solver.family
    result.init_fingerprint = pairing.init_fingerprint(setup.model, config.seed)
    result.stream_fingerprint = pairing.stream_fingerprint(
        solver.train_batch, train_tasks, config.meta_batch, config.seed, device
    )
    result.n_params = sum(p.numel() for p in setup.params.values())
    started_at = result.started_at.isoformat() if result.started_at else ""
    loop = LoopState(0, setup.params, setup.optimiser, setup.generator(), started_at=started_at)
    run = Run(setup, loop, result, notify, memory, resume, started)
    run.probe = Probe.for_run(solver, config, setup.tasks("val"), setup.fixed_index("val"))
    return run


def _restore(run: Run) -> None:
    """Continue from the run's saved state, if ``resume`` holds one for it."""
    config, loop = run.config, run.loop
    state = load_state(run.resume, config) if run.resume is not None else None
    if state is None:
        return
    loop.restore(state)
    run.result.resumed_from_step = state.step
    run.result.started_at = datetime.fromisoformat(state.started_at)
    run.notify(Progress(config.run_id, state.step, config.meta_steps, state.val_acc))


def _step(run: Run, interval: Interval) -> None:
    """One meta-step: a training draw, its meta-gradient, the outer update."""
    setup, loop = run.setup, run.loop
    config = setup.config
    batch = setup.solver.train_batch(setup.tasks("train"), config.meta_batch, loop.generator)
    if run.step_fn is None:
        run.step_fn = meta_step(
            setup.solver, loop.params, batch, cuda_graph=config.cuda_graph, device=setup.device
        )
    grads, metrics = run.step_fn(batch)
    grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()]))
    outer_step(loop.params, grads, loop.optimiser)
    interval.add(metrics, grad_norm)
    loop.step += 1


def _diverge(run: Run, row: dict[str, float | None]) -> None:
    row.update({f"val_{m}": math.nan for m in METRICS})
    run.loop.curves.append(row)
    run.result.status = "diverged"
    run.result.error = f"non-finite loss or meta-gradient by step {run.loop.step}"


def _validate(run: Run, row: dict[str, float | None]) -> None:
    """The validation tasks' metrics (and the solver's assumptions) into the curve row."""
    val_means = {m: v.mean().item() for m, v in run.evaluate("val").items()}
    row.update({f"val_{m}": val_means[m] for m in METRICS})
    if run.probe is not None:  # the solver's assumptions, on a few validation tasks
        row.update(run.probe(run.loop.params))
    run.loop.curves.append(row)
    run.loop.val_acc = val_means["query_acc_post"]


def _checkpoint(run: Run) -> None:
    """Save the loop state, if the run is resumable (``raybench.resume``)."""
    if run.resume is None:
        return
    wall = run.loop.wall_time_s + time.perf_counter() - run.started
    save_state(run.resume, run.config, run.loop.saved(wall, run.peak_mb()))


def _record(run: Run) -> None:
    """The loop's record so far into the result, whether the loop ended or failed."""
    loop, result = run.loop, run.result
    result.steps_done, result.curves = loop.step, loop.curves
    result.final_val_acc, result.wall_time_s = loop.val_acc, loop.wall_time_s


def _finish(run: Run, test: bool) -> None:
    """Times, the trained parameters, the test tasks (a completed run, unless a search
    trial), peak memory."""
    config, loop, result = run.config, run.loop, run.result
    result.train_time_s = loop.train_time_s
    result.ms_per_step = statistics.median(loop.interval_ms) if loop.interval_ms else None
    result.params = {k: v.detach().cpu() for k, v in loop.params.items()}
    if result.status == "completed" and test:
        run.notify(Progress(config.run_id, loop.step, config.meta_steps, loop.val_acc, "test"))
        tested = run.evaluate("test")
        accs = tested["query_acc_post"]
        result.test_acc_mean, result.test_acc_ci95 = mean_ci95(accs)
        result.test_tasks_n = accs.numel()
        result.tasks = {m: tested[m].double().tolist() for m in TASK_METRICS}
        result.task_keys = run.setup.tasks("test").task_keys(run.setup.fixed_index("test"))
    result.peak_memory_mb = run.peak_mb()
