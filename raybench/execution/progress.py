"""Live Rich progress: one line per run (solver, seed, node, step, validation accuracy, ETA)
and the overall count. Updates are host-side only: no device syncs, no per-step messages
between processes."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
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
from raybench.train import Progress as RunProgressEvent
from raybench.train import ProgressHook


class RunProgress:
    """A progress bar per run. In a terminal the bars redraw in place; in a log (CI, a
    cluster job) each evaluation and each finished run prints one plain line instead."""

    def __init__(self, console: Console, total_runs: int) -> None:
        self.bars = Progress(
            TextColumn("{task.description}"),
            TextColumn("[dim]{task.fields[node]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.overall = self.bars.add_task("all runs", total=total_runs, status="", node="")
        self.tasks: dict[str, TaskID] = {}
        self.configs: dict[str, RunConfig] = {}
        self.last_logged: dict[str, tuple[int, str]] = {}
        self.log = not console.is_terminal

    def __enter__(self) -> RunProgress:
        self.bars.start()
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.stop()

    @staticmethod
    def label(config: RunConfig) -> str:
        return f"{config.solver} seed {config.seed}"

    def skip(self, config: RunConfig, why: str) -> None:
        self.bars.console.print(f"[dim]{self.label(config)}: {why}[/]")
        self.bars.advance(self.overall)

    def add(self, config: RunConfig) -> None:
        self.configs[config.run_id] = config
        self.tasks[config.run_id] = self.bars.add_task(
            self.label(config), total=config.meta_steps, status="waiting", node=""
        )

    def update(self, event: RunProgressEvent, node: str = "") -> None:
        task = self.tasks[event.run_id]
        config = self.configs[event.run_id]
        val = "" if event.val_acc is None else f"val {event.val_acc:.1f}%"
        status = {"train": val, "test": f"{val} testing", "done": val}[event.phase]
        self.bars.update(task, completed=event.step, status=status, node=node)
        at_eval = event.step % config.eval_every == 0 or event.step == event.total
        key = (event.step, event.phase)
        if (
            self.log
            and (event.phase != "train" or at_eval)
            and self.last_logged.get(event.run_id) != key
        ):
            self.last_logged[event.run_id] = key
            elapsed = self.bars.tasks[task].elapsed or 0.0
            where = f" on {node}" if node else ""
            self.bars.console.print(
                f"{self.label(config)}{where}: step {event.step}/{event.total} {status} "
                f"({elapsed:.0f}s)"
            )

    def finish(self, run_id: str, status: str, steps_done: int) -> None:
        """The run's result is stored: its line says how it ended, the total advances."""
        task = self.tasks[run_id]
        color = "green" if status == "completed" else "red"
        val = str(self.bars.tasks[task].fields.get("status", "")).removesuffix(" testing")
        self.bars.update(task, completed=steps_done, status=f"{val} [{color}]{status}[/]".strip())
        self.bars.advance(self.overall)
        if self.log:
            self.bars.console.print(f"{self.label(self.configs[run_id])}: {status}")

    def hook(self, config: RunConfig) -> ProgressHook:
        """For runs in this process: a bar, updated from the training loop's events."""
        self.add(config)
        return self.update
