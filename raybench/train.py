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
from raybench.models import Params, model_for
from raybench.resume import TrainingState, load_state, save_state
from raybench.runtime import PeakMemory, device_name, git_commit, kernel_set, resolve_device
from raybench.solvers import Solver, make_solver
from raybench.speed import MetaStep, configure_device, meta_step, outer_optimiser, outer_step
from raybench.tasks import TEST_TASKS_SEED, VAL_TASKS_SEED, TaskIndex, TaskSampler, make_split

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


def _train(
    config: RunConfig,
    data: OmniglotImages,
    result: RunResult,
    notify: ProgressHook,
    test: bool,
    resume: Path | None,
    started: float,
) -> None:
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    result.device = device_name(device)
    result.kernels = kernel_set(device)
    memory = PeakMemory(device)
    memory.reset()
    result.memory_kind = memory.kind

    split = make_split(config.split, data.characters, data.background)
    images = data.images

    def sampler(part: str) -> TaskSampler:
        return TaskSampler(
            images,
            split.part(part),
            ways=config.ways,
            shots=config.shots,
            query=config.query,
            rotations=config.rotations,
            device=device,
            dtype=dtype,
        )

    train_tasks, val_tasks, test_tasks = sampler("train"), sampler("val"), sampler("test")
    if not set(train_tasks.characters).isdisjoint(split.test):
        raise RuntimeError("training would see test characters")
    val_index = val_tasks.fixed_index(config.val_tasks, VAL_TASKS_SEED)
    test_index = test_tasks.fixed_index(config.test_tasks, TEST_TASKS_SEED)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    model = model_for(config)
    solver = make_solver(config, model)
    result.family = solver.family
    params = solver.init_params(config.seed, device, dtype, train_tasks)
    result.init_fingerprint = pairing.init_fingerprint(model, config.seed)
    result.stream_fingerprint = pairing.stream_fingerprint(
        solver.train_batch, train_tasks, config.meta_batch, config.seed, device
    )
    probe = Probe.for_run(solver, config, val_tasks, val_index)  # implicit solvers only
    result.n_params = sum(p.numel() for p in params.values())
    optimiser = outer_optimiser(params, config.outer_lr, device)
    configure_device(device)
    step_fn: MetaStep | None = None
    hold = rendezvous.hold_for(config.run_id)  # None unless fault tests set gates

    eval_steps = config.adapt_steps_eval
    scale = torch.tensor(
        [PERCENT.get(m, 1.0) for m in TRAIN_METRICS] + [1.0], dtype=torch.float64, device=device
    )
    finite = torch.ones((), dtype=torch.bool, device=device)
    train_sums = torch.zeros(len(TRAIN_METRICS) + 1, dtype=torch.float64, device=device)
    interval_ms: list[float] = []
    train_time = 0.0
    val_acc: float | None = None
    earlier_peak_mb = 0.0
    first_step = 1
    state = load_state(resume, config) if resume is not None else None
    if state is not None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state.params[name])
        optimiser.load_state_dict(state.optimiser)
        generator.set_state(state.generator)
        result.curves = list(state.curves)
        result.final_val_acc = val_acc = state.val_acc
        result.steps_done = result.resumed_from_step = state.step
        result.wall_time_s = state.wall_time_s
        result.started_at = datetime.fromisoformat(state.started_at)
        train_time, interval_ms = state.train_time_s, list(state.interval_ms)
        earlier_peak_mb = state.peak_memory_mb or 0.0
        first_step = state.step + 1
        notify(Progress(config.run_id, state.step, config.meta_steps, val_acc))
    interval_start, interval_steps = time.perf_counter(), 0

    nan = torch.tensor(math.nan, dtype=dtype, device=device)
    present = torch.ones(len(TRAIN_METRICS) + 1, dtype=torch.bool, device=device)
    for step in range(first_step, config.meta_steps + 1):
        batch = solver.train_batch(train_tasks, config.meta_batch, generator)
        if step_fn is None:  # built on the first batch: a CUDA graph needs its shapes
            step_fn = meta_step(solver, params, batch, cuda_graph=config.cuda_graph, device=device)
        grads, metrics = step_fn(batch)
        if step == first_step:  # which metrics this solver reports in training
            reported = [m in metrics for m in TRAIN_METRICS]
            present[: len(TRAIN_METRICS)] = torch.tensor(reported)
        grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()]))
        outer_step(params, grads, optimiser)
        step_means = torch.stack(
            [metrics[m].mean() if m in metrics else nan for m in TRAIN_METRICS] + [grad_norm]
        )
        finite &= (torch.isfinite(step_means) | ~present).all()  # no mask indexing: no sync
        train_sums += step_means
        interval_steps += 1
        result.steps_done = step

        if step % config.eval_every == 0 or step == config.meta_steps:
            diverged = not bool(finite)  # the sync point of the interval
            elapsed = time.perf_counter() - interval_start
            train_time += elapsed
            interval_ms.append(1000 * elapsed / interval_steps)
            row: dict[str, float | None] = {"step": step, "train_time_s": train_time}
            means = (train_sums * scale / interval_steps).tolist()
            row.update(  # a metric this solver does not report stays empty
                {
                    f"train_{m}": v if on else None
                    for m, v, on in zip(TRAIN_METRICS, means, reported)
                }
            )
            row["grad_norm"] = means[-1]
            row["ms_per_step"] = interval_ms[-1]
            if diverged:
                row.update({f"val_{m}": math.nan for m in METRICS})
                result.curves.append(row)
                result.status = "diverged"
                result.error = f"non-finite loss or meta-gradient by step {step}"
                break
            val = evaluate(
                solver,
                params,
                val_tasks,
                val_index,
                eval_steps,
                config.eval_batch,
                config.eval_adaptation,
            )
            val_means = {m: v.mean().item() for m, v in val.items()}
            row.update({f"val_{m}": val_means[m] for m in METRICS})
            if probe is not None:  # the solver's assumptions, on a few validation tasks
                row.update(probe(params))
            result.curves.append(row)
            val_acc = val_means["query_acc_post"]
            result.final_val_acc = val_acc
            if resume is not None:
                save_state(
                    resume,
                    config,
                    TrainingState(
                        step=step,
                        params=params,
                        optimiser=optimiser.state_dict(),
                        generator=generator.get_state(),
                        curves=result.curves,
                        train_time_s=train_time,
                        interval_ms=interval_ms,
                        val_acc=val_acc,
                        wall_time_s=result.wall_time_s + time.perf_counter() - started,
                        peak_memory_mb=max(earlier_peak_mb, memory.read_mb()),
                        started_at=result.started_at.isoformat() if result.started_at else "",
                    ),
                )
            train_sums.zero_()
            interval_steps = 0
            interval_start = time.perf_counter()
        host_ms = 1000 * (time.perf_counter() - interval_start) / max(interval_steps, 1)
        ms = host_ms if interval_steps else interval_ms[-1]
        notify(Progress(config.run_id, step, config.meta_steps, val_acc, ms_per_step=ms))
        if hold is not None:
            interval_start += hold(step)

    result.train_time_s = train_time
    result.ms_per_step = statistics.median(interval_ms) if interval_ms else None
    result.params = {k: v.detach().cpu() for k, v in params.items()}
    if result.status == "completed" and test:
        notify(Progress(config.run_id, result.steps_done, config.meta_steps, val_acc, "test"))
        tested = evaluate(
            solver,
            params,
            test_tasks,
            test_index,
            eval_steps,
            config.eval_batch,
            config.eval_adaptation,
        )
        accs = tested["query_acc_post"]
        result.test_acc_mean, result.test_acc_ci95 = mean_ci95(accs)
        result.test_tasks_n = accs.numel()
        result.tasks = {m: tested[m].double().tolist() for m in TASK_METRICS}
        result.task_keys = test_tasks.task_keys(test_index)
    result.peak_memory_mb = max(earlier_peak_mb, memory.read_mb())
