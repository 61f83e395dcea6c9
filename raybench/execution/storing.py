"""The driver's writes to the store, which may fail without losing a result.

A folder that becomes unwritable, or a full disk, must not take the driver down with the
runs still training: a result that cannot be written is kept in memory and retried while
the others go on (and once more at the end). Its training state stays in ``progress/``
(the store removes it only after the run's row is written), so if the store is still not
writable when the command ends, ``--resume`` tests it again from its final state instead of
training it again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.console import Console
from rich.markup import escape

from raybench.atomic import describe_write_error
from raybench.results import ExperimentStore
from raybench.train import RunResult

RETRY_EVERY_S = 10.0


class ResultWriter:
    """Writes each finished run once; keeps and retries what could not be written."""

    def __init__(
        self,
        store: ExperimentStore,
        console: Console,
        source: str = "preset",
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.console = console
        self.source = source
        self.sources = dict(sources or {})
        self.pending: dict[str, RunResult] = {}
        self.errors: dict[str, str] = {}
        self.last_try = 0.0

    def write(self, result: RunResult, label: str) -> bool:
        """Store ``result``; on failure say what could not be written and keep it."""
        run_id = result.config.run_id
        try:
            self.store.write_run(result, source=self.sources.get(run_id, self.source))
        except OSError as exc:
            self.pending[run_id] = result
            self.errors[run_id] = describe_write_error(exc)
            where = exc.filename or self.store.root
            self.console.print(
                f"[red]{escape(label)}: could not store its result in {escape(str(where))} "
                f"({escape(self.errors[run_id])}); kept, retried while the other runs go "
                "on[/]"
            )
            self.last_try = time.monotonic()
            return False
        self.pending.pop(run_id, None)
        self.errors.pop(run_id, None)
        return True

    def retry(self, force: bool = False) -> list[RunResult]:
        """Try the kept results again (at most every ``RETRY_EVERY_S`` unless ``force``);
        returns those stored now."""
        if not self.pending or (not force and time.monotonic() - self.last_try < RETRY_EVERY_S):
            return []
        self.last_try = time.monotonic()
        stored = []
        for run_id, result in list(self.pending.items()):
            try:
                self.store.write_run(result, source=self.sources.get(run_id, self.source))
            except OSError as exc:
                self.errors[run_id] = describe_write_error(exc)
                continue
            del self.pending[run_id]
            del self.errors[run_id]
            stored.append(result)
            self.console.print(f"[green]{escape(run_id)}: result stored on a later try[/]")
        return stored

    def report_unstored(self) -> None:
        """The last word on results that never got written."""
        if not self.pending:
            return
        self.console.print(
            f"[red]{len(self.pending)} result(s) could not be stored in "
            f"{escape(str(self.store.root))}:[/]"
        )
        for run_id, error in self.errors.items():
            state = self.store.progress_path(run_id)
            kept = (
                f"its training state is kept in {state}"
                if state.is_file()
                else "no training state is left (it is trained again)"
            )
            self.console.print(f"[red]  {escape(run_id)}: {escape(error)}; {escape(kept)}[/]")
        self.console.print(
            f"[red]make the folder writable (or free space), then `raybench run --resume "
            f"{escape(str(self.store.root))}` stores them: a run whose final state is kept is "
            "tested again, not trained again[/]"
        )
