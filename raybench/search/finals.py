"""The final runs of a sweep: each solver's default and selected configuration trained again
with the protocol's seeds (common random numbers: the same seeds for both and for every
solver) at the final length, then tested. A replication trains the same configurations on
other seeds; both plan them here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raybench.config import RunConfig
from raybench.search.protocol import Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from raybench.execution import RunSummary
    from raybench.results import ExperimentStore
    from raybench.search.sweep import SweepOptions
    from raybench.trackers import TrackerSpec


@dataclass
class FinalPlan:
    """The configurations to train, each run's source (``default`` or ``tuned``), and the
    solvers without a selected configuration (no trial completed: the default alone)."""

    configs: list[RunConfig] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    without_tuned: list[str] = field(default_factory=list)


def final_plan(protocol: Protocol, best_dir: Path, seeds: Sequence[int] | None = None) -> FinalPlan:
    """The default configuration of every solver of ``protocol`` and the one selected in
    ``best_dir`` (``best/<solver>.yaml``), on ``seeds`` (the protocol's when None). Where
    the default was selected the two are one configuration, trained once."""
    from raybench.configfile import read_config_file
    from raybench.solvers import make_config

    plan = FinalPlan()
    length = {"meta_steps": protocol.final_steps}
    seeds = list(protocol.seeds if seeds is None else seeds)
    for name in protocol.solvers:
        for seed in seeds:
            config = make_config(
                name, protocol.preset, {**protocol.overrides, **length, "seed": seed}
            )
            plan.configs.append(config)
            plan.sources[config.run_id] = "default"
        best = best_dir / f"{name}.yaml"
        if not best.is_file():
            plan.without_tuned.append(name)
            continue
        solver, best_preset, best_settings = read_config_file(best)
        for seed in seeds:
            config = make_config(solver, best_preset, {**best_settings, **length, "seed": seed})
            if config.run_id not in plan.sources:
                plan.configs.append(config)
                plan.sources[config.run_id] = "tuned"
    return plan


def train_finals(
    protocol: Protocol,
    store: ExperimentStore,
    options: SweepOptions,
    console: Console,
    data_dir: Path | None,
    log_every: float,
    connect_timeout: float,
    tracker: TrackerSpec | None,
) -> list[RunSummary]:
    """Train, test and store the final runs of :func:`final_plan` (the selected
    configurations in ``<experiment>/best``) on Ray, each trial's resources a run's; one
    configuration where the default was selected. How each run ended, in order."""
    from raybench.execution import ExecutionOptions, execute

    plan = final_plan(protocol, store.root / "best")
    for name in plan.without_tuned:
        console.print(f"[red]{name}: no completed trial: its default alone is run[/]")
    execution = ExecutionOptions(
        backend="ray",
        max_concurrent=options.max_concurrent,
        max_retries=options.max_retries,
        gpus_per_run=options.gpus_per_trial,
        cpus_per_run=options.cpus_per_trial,
        source="tuned",
        log_every=log_every,
        connect_timeout=connect_timeout,
        tracker=tracker,
    )
    return execute(plan.configs, store, console, execution, data_dir, sources=plan.sources)
