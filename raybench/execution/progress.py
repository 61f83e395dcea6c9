"""Progress of a set of runs: live Rich bars in a terminal, plain lines in a log.

In a terminal each run has a bar that redraws in place (solver, seed, node, step,
validation accuracy, ETA). When the output is not a terminal (``| tee log``, ``nohup``, a
cluster job) nothing redraws, so every run still training prints one plain line at least
every ``log_every`` seconds (step, validation accuracy when known, ms per meta-step, ETA),
with one line for all runs (counts and the overall ETA); evaluation points and finished
runs print their line as they happen. Updates are host-side only: no device syncs, no
per-step messages between processes.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from raybench.config import RunConfig
from raybench.durations import duration_text
from raybench.train import Progress as RunProgressEvent
from raybench.train import ProgressHook

LOG_EVERY = 60.0  # seconds between a run's plain progress lines when not in a terminal
TICK_SECONDS = 1.0  # how often the log's clock looks for lines that are due


def format_eta(seconds: float | None) -> str:
    """``42s``, ``7m 05s``, ``3h 40m``; ``—`` when unknown."""
    return duration_text(None if seconds is None else max(0.0, seconds), second_digits=0)


@dataclass
class RunState:
    """What the display knows of one run, from its progress events."""

    config: RunConfig
    added_at: float
    node: str = ""
    step: int = 0
    val_acc: float | None = None
    phase: str = "waiting"  # waiting | train | test | done
    ms_per_step: float | None = None
    first_seen: tuple[float, int] | None = None  # (time, step) of the first event
    last_event: float | None = None
    last_logged: float | None = None
    status: str | None = None  # how it ended, once stored

    @property
    def running(self) -> bool:
        return self.first_seen is not None and self.status is None

    def seconds_per_step(self) -> float | None:
        """Observed over the run's life here (evaluations included); else the worker's
        ms per meta-step."""
        if self.first_seen is not None and self.last_event is not None:
            start, first_step = self.first_seen
            if self.step > first_step and self.last_event > start:
                return (self.last_event - start) / (self.step - first_step)
        return None if self.ms_per_step is None else self.ms_per_step / 1000

    def eta(self) -> float | None:
        rate = self.seconds_per_step()
        if rate is None:
            return None
        return max(0, self.config.meta_steps - self.step) * rate


def setting_text(config: RunConfig, key: str) -> str:
    """A setting's value as given (``0.01``, ``5``); solver options as ``solver.knob``."""
    _, dot, knob = key.partition(".")
    value = config.solver_options.get(knob) if dot else getattr(config, key, None)
    return f"{value:g}" if isinstance(value, float) else str(value)


class RunProgress:
    """A progress bar per run, and in a log plain lines (see the module docstring).

    ``clock`` and ``ticker`` exist for tests: the periodic lines come from :meth:`tick`,
    which a background thread calls about once a second when ``ticker`` is on."""

    def __init__(
        self,
        console: Console,
        total_runs: int,
        *,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
        label_settings: Sequence[str] = (),
    ) -> None:
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),
            TextColumn("[dim]{task.fields[node]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.console = console
        self.total_runs = total_runs
        self.label_settings = tuple(label_settings)
        self.overall = self.bars.add_task("all runs", total=total_runs, status="", node="")
        self.tasks: dict[str, TaskID] = {}
        self.configs: dict[str, RunConfig] = {}
        self.states: dict[str, RunState] = {}
        self.skipped = 0
        self.log = not console.is_terminal
        self.log_every = log_every
        self.clock = clock
        self.last_overall = clock()
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if self.log and ticker and log_every > 0:
            self.thread = threading.Thread(target=self._tick_loop, daemon=True)

    def __enter__(self) -> RunProgress:
        self.bars.start()
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        self.bars.stop()

    def label(self, config: RunConfig) -> str:
        """``reptile seed 0``; with ``label_settings`` (what a study varies) their values
        too: ``reptile outer_lr=0.01 seed 0``."""
        shown = (f"{k.rpartition('.')[2]}={setting_text(config, k)}" for k in self.label_settings)
        return " ".join([config.solver, *shown, f"seed {config.seed}"])

    def skip(self, config: RunConfig, why: str) -> None:
        self.bars.console.print(f"[dim]{escape(self.label(config))}: {escape(why)}[/]")
        self.bars.advance(self.overall)
        self.skipped += 1

    def add(self, config: RunConfig) -> None:
        with self.lock:
            self.configs[config.run_id] = config
            self.states[config.run_id] = RunState(config, added_at=self.clock())
            self.tasks[config.run_id] = self.bars.add_task(
                self.label(config), total=config.meta_steps, status="waiting", node=""
            )

    def update(self, event: RunProgressEvent, node: str = "") -> None:
        task = self.tasks[event.run_id]
        config = self.configs[event.run_id]
        val = "" if event.val_acc is None else f"val {event.val_acc:.1f}%"
        status = {"train": val, "test": f"{val} testing", "done": val}[event.phase]
        self.bars.update(task, completed=event.step, status=status, node=node)
        with self.lock:
            now = self.clock()
            state = self.states[event.run_id]
            changed = state.phase != event.phase or state.step != event.step
            if state.first_seen is None:
                state.first_seen = (now, event.step)
            if changed or state.last_event is None:
                state.last_event = now
            state.node = node or state.node
            state.step, state.phase, state.val_acc = event.step, event.phase, event.val_acc
            state.ms_per_step = event.ms_per_step or state.ms_per_step
            if not self.log:
                return
            at_eval = event.step % config.eval_every == 0 or event.step == event.total
            milestone = event.phase == "test" or (event.phase == "train" and at_eval)
            periodic = event.phase != "done" and self._due(state, now)
            if (changed and milestone) or periodic:
                self._log_run(state, now)

    def finish(self, run_id: str, status: str, steps_done: int) -> None:
        """The run's result is stored: its line says how it ended, the total advances."""
        task = self.tasks[run_id]
        color = "green" if status == "completed" else "red"
        val = str(self.bars.tasks[task].fields.get("status", "")).removesuffix(" testing")
        self.bars.update(task, completed=steps_done, status=f"{val} [{color}]{status}[/]".strip())
        self.bars.advance(self.overall)
        with self.lock:
            state = self.states[run_id]
            state.status, state.step = status, steps_done
            if self.log:
                now = self.clock()
                config = state.config
                val = "" if state.val_acc is None else f", val {state.val_acc:.1f}%"
                took = ""
                if state.first_seen is not None:
                    took = f" after {format_eta(now - state.first_seen[0])}"
                self._print(
                    f"{self.label(config)}: {status} at step {steps_done}/{config.meta_steps}"
                    f"{val}{took}"
                )
                self._log_overall(now)

    def hook(self, config: RunConfig) -> ProgressHook:
        """For runs in this process: a bar, updated from the training loop's events."""
        self.add(config)
        return self.update

    # ------------------------------------------------------------ plain lines in a log

    def tick(self) -> None:
        """Print the lines that are due: each running run not logged for ``log_every``
        seconds, and the overall line."""
        if not self.log or self.log_every <= 0:
            return
        with self.lock:
            now = self.clock()
            for state in self.states.values():
                if state.running and state.phase != "done" and self._due(state, now):
                    self._log_run(state, now)
            if now - self.last_overall >= self.log_every and self.unfinished():
                self._log_overall(now)

    def _due(self, state: RunState, now: float) -> bool:
        """A running run's line is due at its start, then every ``log_every`` seconds."""
        if self.log_every <= 0:
            return False
        return state.last_logged is None or now - state.last_logged >= self.log_every

    def _tick_loop(self) -> None:
        while not self.stop.wait(TICK_SECONDS):
            self.tick()

    def unfinished(self) -> int:
        finished = self.skipped + sum(s.status is not None for s in self.states.values())
        return max(0, self.total_runs - finished)

    def run_line(self, state: RunState, now: float) -> str:
        config = state.config
        where = f" on {state.node}" if state.node else ""
        total = config.meta_steps
        parts = [f"step {state.step}/{total} ({100 * state.step / max(total, 1):.0f}%)"]
        if state.val_acc is not None:
            parts.append(f"val {state.val_acc:.1f}%")
        if state.ms_per_step is not None:
            parts.append(f"{state.ms_per_step:.0f} ms/step")
        parts.append("testing" if state.phase == "test" else f"ETA {format_eta(state.eta())}")
        if state.last_event is not None and now - state.last_event > max(self.log_every, 5.0):
            parts.append(f"last report {format_eta(now - state.last_event)} ago")
        return f"{self.label(config)}{where}: " + ", ".join(parts)

    def overall_eta(self) -> float | None:
        """Runs in flight in parallel: the longest remaining one, or the remaining work
        (the waiting runs at the speed seen for their solver, else for any run) shared
        among the runs in flight, whichever is longer."""
        running = [s for s in self.states.values() if s.running]
        waiting = [s for s in self.states.values() if s.first_seen is None and s.status is None]
        unregistered = max(0, self.unfinished() - len(running) - len(waiting))
        rates: dict[str, list[float]] = {}
        for s in self.states.values():
            rate = s.seconds_per_step()
            if rate is not None:
                rates.setdefault(s.config.solver, []).append(rate)
        every = [r for values in rates.values() for r in values]
        if not every:
            return None
        etas = [s.eta() for s in running]
        known = [e for e in etas if e is not None]
        work = sum(known) + sum(
            statistics.fmean(rates.get(s.config.solver, every)) * s.config.meta_steps
            for s in waiting
        )
        if unregistered:
            steps = statistics.fmean(s.config.meta_steps for s in self.states.values())
            work += unregistered * statistics.fmean(every) * steps
        slots = max(1, len(running))
        return max(max(known, default=0.0), work / slots)

    def overall_line(self) -> str:
        running = sum(s.running for s in self.states.values())
        ended = [s.status for s in self.states.values() if s.status is not None]
        done = self.skipped + len(ended)
        failed = sum(status == "failed" for status in ended)
        waiting = max(0, self.total_runs - done - running)
        text = f"all runs: {done}/{self.total_runs} finished"
        if failed:
            text += f" ({failed} failed)"
        text += f", {running} running, {waiting} waiting"
        if done < self.total_runs:
            text += f"; ETA {format_eta(self.overall_eta())}"
        return text

    def _log_run(self, state: RunState, now: float) -> None:
        state.last_logged = now
        self._print(self.run_line(state, now))

    def _log_overall(self, now: float) -> None:
        self.last_overall = now
        self._print(self.overall_line())

    def _print(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self.console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)
