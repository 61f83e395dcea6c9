"""The final runs of a sweep: each solver's default and selected configuration trained again
with the protocol's seeds (common random numbers: the same seeds for both and for every
solver) at the final length, then tested. A replication trains the same configurations on
other seeds; both plan them here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raybench.config import RunConfig
from raybench.errors import ParameterError, RaybenchError
from raybench.search.protocol import Protocol

if TYPE_CHECKING:
    from typing import Any

    import pyarrow as pa
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
    from rich.markup import escape

    from raybench.execution import ExecutionOptions, execute

    plan = final_plan(protocol, store.root / "best")
    for name in plan.without_tuned:
        console.print(f"[red]{escape(name)}: no completed trial: its default alone is run[/]")
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


# -- a replication: the same final runs on fresh seeds ----------------------------------

REPLICATION_MANIFEST = "replication"  # replication.json: what was replicated, on which seeds


def published_identity(published: ExperimentStore) -> str:
    """What a replication replicates, as a content hash: the sweep's protocol and every
    selected configuration (``best/*.yaml``), each parsed, so two sweeps of one name differ
    and a reformatted file does not. Reads no torch."""
    import hashlib
    import json

    import yaml

    content: dict[str, Any] = {"protocol": published.read_manifest("protocol"), "best": {}}
    for path in sorted((published.root / "best").glob("*.yaml")):
        try:
            content["best"][path.stem] = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RaybenchError(f"{path}: not a readable configuration ({exc})") from None
    text = json.dumps(content, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def replicated_seeds(published: ExperimentStore, replicated: ExperimentStore) -> list | None:
    """The seeds ``replicated`` planned (None where it has no manifest); a replication of
    another sweep than ``published`` (its manifest names another) is refused."""
    if not (replicated.root / f"{REPLICATION_MANIFEST}.json").is_file():
        return None
    manifest = replicated.read_manifest(REPLICATION_MANIFEST)
    identity = manifest.get("published")
    if identity is not None and identity != published_identity(published):
        raise RaybenchError(
            f"{replicated.root} replicates another sweep than {published.root} "
            "(its replication.json names other protocol or configurations)"
        )
    return manifest.get("seeds")


def planned_runs(published: pa.Table, replicated: pa.Table, seeds: list | None) -> set[str]:
    """The run ids of the ``replicated`` runs that replicate the ``published`` runs: their
    configurations, on ``seeds`` (any seed where None)."""
    configs = (
        set(published.column("config_fingerprint").to_pylist()) if published.num_rows else set()
    )
    if replicated.num_rows == 0:
        return set()
    return {
        run_id
        for run_id, config, seed in zip(
            replicated.column("run_id").to_pylist(),
            replicated.column("config_fingerprint").to_pylist(),
            replicated.column("seed").to_pylist(),
        )
        if config in configs and (seeds is None or seed in seeds)
    }


def parse_seeds(text: str | Sequence[int]) -> tuple[int, ...]:
    """``8-15`` or ``8,9,10`` (or the seeds): distinct non-negative seeds, in order."""
    seeds: list[int] = []
    try:
        if not isinstance(text, str):
            seeds = [int(s) for s in text]
        else:
            for part in (p.strip() for p in text.split(",") if p.strip()):
                low, _, high = part.partition("-")
                seeds += range(int(low), int(high or low) + 1)
    except (TypeError, ValueError):
        raise ParameterError(
            "{seeds} {text!r}: expected seeds like 8-15 or 8,9,10", text=text
        ) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ParameterError("{seeds} {text!r}: expected distinct non-negative seeds", text=text)
    return tuple(seeds)


def fresh_seeds(published: tuple[int, ...]) -> tuple[int, ...]:
    """As many seeds as the published ones, the next after the largest."""
    start = max(published) + 1
    return tuple(range(start, start + len(published)))


def replication_plan(
    published: ExperimentStore, seeds: tuple[int, ...] | None, target: ExperimentStore
) -> tuple[Any, dict[str, Any]]:
    """The runs to train (:class:`raybench.search.finals.FinalPlan`) and the manifest
    recorded with them; a one-line error for a store that is not a finished sweep, seeds
    shared with the published runs, or a replication folder of other seeds or another
    experiment."""
    from raybench.search.protocol import read_protocol, seed_text

    if not (published.root / "protocol.json").is_file():
        raise RaybenchError(
            f"{published.root} is not a sweep under a protocol (no protocol.json): "
            "nothing to replicate"
        )
    protocol = read_protocol(published)
    seeds = fresh_seeds(protocol.seeds) if seeds is None else seeds
    shared = sorted(set(seeds) & set(protocol.seeds))
    if shared:
        raise RaybenchError(
            f"seeds {seed_text(shared)} are the published runs' own: a replication needs "
            f"fresh seeds (the published ones are {seed_text(protocol.seeds)})"
        )
    plan = final_plan(protocol, published.root / "best", seeds)
    manifest = {
        # relative to the replication's folder, so a committed store names no machine's path
        "of": os.path.relpath(Path(published.root).resolve(), Path(target.root).resolve()),
        "published": published_identity(published),
        "published_seeds": list(protocol.seeds),
        "seeds": list(seeds),
    }
    if (target.root / f"{REPLICATION_MANIFEST}.json").is_file():
        stored = target.read_manifest(REPLICATION_MANIFEST)
        if stored.get("published", manifest["published"]) != manifest["published"]:
            raise ParameterError(
                "{root} replicates another sweep named {of} (another protocol or selected "
                "configurations than {published}'s): choose another {into}",
                root=target.root,
                of=Path(stored.get("of", "?")).name,
                published=published.root,
            )
        if stored.get("seeds") != manifest["seeds"] or Path(stored.get("of", "")).name != (
            Path(manifest["of"]).name
        ):
            raise ParameterError(
                "{root} replicates {of} on seeds {stored}: choose another {into}, or the same "
                "seeds to continue it",
                root=target.root,
                of=Path(stored.get("of", "?")).name,
                stored=seed_text(stored.get("seeds") or []),
            )
        foreign = target.finished_ids() - {c.run_id for c in plan.configs}
        if foreign:
            raise ParameterError(
                "{root} holds {n} runs {published} does not plan (for example {run}): "
                "choose another {into}",
                root=target.root,
                n=len(foreign),
                published=published.root,
                run=min(foreign),
            )
    elif target.root.exists() and any(target.root.iterdir()):
        raise ParameterError(
            "{root} exists and is not a replication: choose another {into}", root=target.root
        )
    return plan, manifest
