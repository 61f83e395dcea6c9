"""Runs one after another in this process: the debugging path and the reference for others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from raybench.config import RunConfig
from raybench.data import OmniglotImages
from raybench.execution.progress import RunProgress
from raybench.results import ExperimentStore
from raybench.train import train


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str  # completed | diverged | failed | skipped
    error: str | None = None


def run_inline(
    configs: Sequence[RunConfig],
    data: OmniglotImages,
    store: ExperimentStore,
    console: Console,
    *,
    rerun: bool = False,
) -> list[RunSummary]:
    """Train, test and store each config. A run already in the store is skipped unless
    ``rerun``; a failing run is stored as ``failed`` and the others go on."""
    summaries: list[RunSummary] = []
    with RunProgress(console, len(configs)) as progress:
        for config in configs:
            if store.has_run(config.run_id) and not rerun:
                progress.skip(config, "already stored, skipped (--rerun trains it again)")
                summaries.append(RunSummary(config.run_id, "skipped"))
                continue
            result = train(config, data, progress=progress.hook(config))
            store.write_run(result)
            summaries.append(RunSummary(config.run_id, result.status, result.error))
            if result.error:
                console.print(f"[red]{config.solver} seed {config.seed}: {result.error}[/]")
    return summaries
