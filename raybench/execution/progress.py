"""Live Rich progress: one line per run (step, validation accuracy, ETA) and the total."""

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
    """A progress bar per run; updates are host-side only (no device syncs)."""

    def __init__(self, console: Console, total_runs: int) -> None:
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.overall = self.bars.add_task("all runs", total=total_runs, status="")

    def __enter__(self) -> RunProgress:
        self.bars.start()
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.stop()

    def _label(self, config: RunConfig) -> str:
        return f"{config.solver} seed {config.seed}"

    def skip(self, config: RunConfig, why: str) -> None:
        self.bars.console.print(f"[dim]{self._label(config)}: {why}[/]")
        self.bars.advance(self.overall)

    def hook(self, config: RunConfig) -> ProgressHook:
        task: TaskID = self.bars.add_task(
            self._label(config), total=config.meta_steps, status="starting"
        )

        log = not self.bars.console.is_terminal  # logs get a line per evaluation instead
        label = self._label(config)

        def update(event: RunProgressEvent) -> None:
            val = "" if event.val_acc is None else f"val {100 * event.val_acc:.1f}%"
            status = {"train": val, "test": f"{val} testing", "done": f"{val} done"}[event.phase]
            self.bars.update(task, completed=event.step, status=status)
            if event.phase == "done":
                self.bars.advance(self.overall)
            at_eval = event.step % config.eval_every == 0 or event.step == event.total
            if log and (event.phase != "train" or at_eval):
                elapsed = self.bars.tasks[task].elapsed or 0.0
                self.bars.console.print(
                    f"{label}: step {event.step}/{event.total} {status} ({elapsed:.0f}s)"
                )

        return update
