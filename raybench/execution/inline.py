"""Runs one after another in this process: the debugging path and the reference for others."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rich.console import Console
from rich.markup import escape

from raybench import signals
from raybench.config import RunConfig
from raybench.data import OmniglotImages
from raybench.execution.options import RunSummary
from raybench.execution.progress import RunProgress
from raybench.execution.storing import ResultWriter
from raybench.train import train


def run_inline(
    configs: Sequence[RunConfig],
    data: OmniglotImages,
    writer: ResultWriter,
    console: Console,
    *,
    threads: int = 1,
    log_every: float = 60.0,
    label_settings: Sequence[str] = (),
) -> list[RunSummary]:
    """Train, test and store each config; a failing run is stored as ``failed``, and a
    result the store cannot take is kept by ``writer`` while the next run trains.

    Runs use ``threads`` CPU threads, as a Ray actor given that many CPUs does: float
    reductions depend on the thread count, so this is what makes both back ends give
    identical results for the same seed."""
    summaries: list[RunSummary] = []
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        progress = RunProgress(
            console, len(configs), log_every=log_every, label_settings=label_settings
        )
        _run_all(configs, data, writer, console, summaries, progress)
    finally:
        torch.set_num_threads(previous)
    return summaries


def _run_all(
    configs: Sequence[RunConfig],
    data: OmniglotImages,
    writer: ResultWriter,
    console: Console,
    summaries: list[RunSummary],
    progress: RunProgress,
) -> None:
    store = writer.store
    with signals.interrupts_remembered(), progress:
        for config in configs:
            signals.raise_if_interrupted()
            resume = store.progress_path(config.run_id)
            result = train(config, data, progress=progress.hook(config), resume=resume)
            result.resources = f"inline, {torch.get_num_threads()} threads"
            writer.write(result, progress.label(config))
            writer.retry()
            progress.finish(config.run_id, result.status, result.steps_done)
            summaries.append(RunSummary(config.run_id, result.status, result.error))
            if result.error:
                console.print(f"[red]{escape(progress.label(config))}: {escape(result.error)}[/]")
