"""Progress of a solver's search: a live Rich display in a terminal, plain lines in a log.

In a terminal one bar per solver redraws in place: trials done of the total, how many are
running and how many ASHA stopped, elapsed time, ETA, and under it the best trial so far
with its parameters. The best is the best *completed* trial by its final validation
accuracy, the measure that selects ``best/<solver>.yaml`` (an early high value of a trial
later stopped is not a result). When the output is not a terminal, every trial that ends
prints one line, and a line of counts and ETA is printed at least every ``log_every``
seconds while trials run (as ``raybench run`` does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ray.tune import Callback
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from raybench.config import RunConfig
from raybench.execution.progress import LOG_EVERY, format_eta
from raybench.search.spaces import decode
from raybench.search.trials import METRIC, best_trial, error_text, trial_row, trial_steps


def params_text(params: dict[str, Any]) -> str:
    """``inner_lr=0.0441 inner_steps=3 imaml.lam=12.5``: a trial's sampled values."""
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


class _SweepBars(Progress):
    """The bar, and under it the best trial's line."""

    best_line: Text = Text("")

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.best_line:
            yield self.best_line


class LiveSweep(Callback):
    """The display of one solver's search (see the module docstring). Tune pickles its
    callbacks with the experiment state; the display is left behind.

    ``clock`` exists for tests."""

    def __init__(
        self,
        console: Console,
        solver: str,
        total: int,
        base: RunConfig,
        *,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console, self.solver, self.total, self.base = console, solver, total, base
        self.log = not console.is_terminal
        self.log_every = log_every
        self.clock = clock
        self.started = clock()
        self.last_line = self.refreshed = self.started
        self.rows: list[dict[str, Any]] = []  # the trials that ended, as the table has them
        self.running: dict[str, tuple[int, int]] = {}  # trial id -> (step, of steps)
        self.bars: _SweepBars | None = _SweepBars(
            TextColumn(f"sweep {solver}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            get_time=clock,
            disable=self.log,
        )
        self.task = self.bars.add_task(solver, total=total, counts="", eta="—")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("console", "bars")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.console, self.bars = None, None

    # ------------------------------------------------------------------ what it knows

    def counts(self) -> dict[str, int]:
        statuses = [r["status"] for r in self.rows]
        return {
            "done": len(self.rows),
            "running": len(self.running),
            "stopped": statuses.count("stopped"),
            "errored": statuses.count("errored") + statuses.count("diverged"),
        }

    def eta(self) -> float | None:
        """Trials finished per second so far (running ones counted by their progress),
        applied to what is left."""
        done = len(self.rows) + sum(s / max(n, 1) for s, n in self.running.values())
        if done <= 0:
            return None
        elapsed = self.clock() - self.started
        return elapsed * max(0.0, self.total - done) / done

    def best(self) -> tuple[dict | None, float | None]:
        return best_trial(self.rows)

    def counts_text(self) -> str:
        c = self.counts()
        text = f"{c['running']} running, {c['stopped']} stopped"
        if c["errored"]:
            text += f", {c['errored']} failed"
        return text

    def best_text(self) -> str:
        params, value = self.best()
        if params is None:
            return "best: none completed yet"
        return f"best val {value:.2f}% ({params_text(params)})"

    def status_line(self) -> str:
        c = self.counts()
        elapsed = format_eta(self.clock() - self.started)
        return (
            f"sweep {self.solver}: {c['done']}/{self.total} trials done, {self.counts_text()}; "
            f"elapsed {elapsed}, ETA {format_eta(self.eta())}; {self.best_text()}"
        )

    # ------------------------------------------------------------------ Tune's events

    def setup(self, **info: Any) -> None:
        if self.bars is not None:
            self.bars.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        steps = trial_steps(self.base, decode(dict(trial.config or {})))
        self.running[str(trial.trial_id)] = (0, steps)
        self._refresh()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        key = str(trial.trial_id)
        if key in self.running and result.get(METRIC) is not None:
            self.running[key] = (int(result.get("step") or 0), self.running[key][1])
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, error_text(trial))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.tick()
        if self.clock() - self.refreshed >= 1.0:  # the ETA moves between events too
            self._refresh()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bars is not None:
            self._refresh()
            self.bars.stop()

    # ------------------------------------------------------------------ output

    def _ended(self, trial: Any, error: str | None) -> None:
        key = str(trial.trial_id)
        self.running.pop(key, None)
        row = trial_row(
            self.solver, "", self.base, key, dict(trial.config or {}), [],
            dict(trial.last_result or {}), error,
        )  # fmt: skip
        self.rows.append(row)
        self._refresh()
        if self.log and self.bars is not None:
            value = row["val_acc"]
            val = "" if value is None else f", val {value:.2f}%"
            self._print(
                f"sweep {self.solver}: trial {key} {row['status']} at step "
                f"{row['steps']}/{trial_steps(self.base, decode(dict(trial.config or {})))}{val}"
            )
            self._print(self.status_line())

    def tick(self) -> None:
        """In a log, the status line when ``log_every`` seconds passed without one."""
        if not self.log or self.bars is None or self.log_every <= 0:
            return
        if self.clock() - self.last_line >= self.log_every and len(self.rows) < self.total:
            self._print(self.status_line())

    def _refresh(self) -> None:
        if self.bars is None or self.log:
            return
        self.refreshed = self.clock()
        eta = self.eta()
        self.bars.best_line = Text(f"  {self.best_text()}", style="dim")
        self.bars.update(
            self.task,
            completed=len(self.rows),
            counts=self.counts_text(),
            eta=format_eta(eta) if eta is not None and math.isfinite(eta) else "—",
        )

    def _print(self, text: str) -> None:
        self.last_line = self.clock()
        stamp = datetime.now().strftime("%H:%M:%S")
        self.console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)
