"""What every command asked an experiment to train, so ``--resume`` can finish all of it.

Each command that trains runs records its plan (the configurations and where they came
from) as ``manifests/run-<hash>.json`` once its back end is up: one file per distinct
plan, never overwritten by the next command. ``--resume`` continues the union of every
plan and every saved training state (``progress/``), less the runs already finished, so an
interrupted run of an earlier command is never forgotten. ``run.json`` (one plan, the last
command's) is how raybench recorded plans before; it is still read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raybench.atomic import atomic_write_bytes
from raybench.config import RunConfig
from raybench.errors import RaybenchError
from raybench.results.store import ExperimentStore, read_json, statuses

MANIFESTS = "manifests"
LEGACY = "run.json"


def record_plan(
    store: ExperimentStore,
    configs: Sequence[RunConfig],
    source: str,
    sources: Mapping[str, str] | None = None,
) -> Path:
    """The plan of one command; the same plan twice is one file."""
    sources = sources or {}
    body = {
        "configs": [c.to_dict() for c in configs],
        "sources": [sources.get(c.run_id, source) for c in configs],
        "source": source,
    }
    text = json.dumps(body, indent=1, sort_keys=True)
    path = store.root / MANIFESTS / f"run-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"
    if not path.is_file():
        atomic_write_bytes(path, text.encode())
    return path


def plan_files(store: ExperimentStore) -> list[Path]:
    files = sorted((store.root / MANIFESTS).glob("run-*.json"))
    legacy = store.root / LEGACY
    return ([legacy] if legacy.is_file() else []) + files


@dataclass
class ResumePlan:
    """Every run an experiment still owes: its config, source, and where it goes on from."""

    configs: list[RunConfig] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    from_step: dict[str, int] = field(default_factory=dict)  # run id -> saved state's step
    failed: set[str] = field(default_factory=set)  # stored as failed: trained again
    finished: int = 0
    unusable_states: list[tuple[Path, str]] = field(default_factory=list)


def plan_resume(store: ExperimentStore) -> ResumePlan:
    """The union of every recorded plan and every saved state, less what is finished.
    A damaged plan file is a one-line error naming it (``read_json``)."""
    from raybench.configfile import config_from_dict
    from raybench.resume import saved_states

    plan = ResumePlan()
    wanted: dict[str, RunConfig] = {}
    for path in plan_files(store):
        body = read_json(path)
        configs = body.get("configs")
        if not isinstance(configs, list):
            raise RaybenchError(f"{path} is damaged (no list of configs); move it away")
        sources = body.get("sources") or [body.get("source", "preset")] * len(configs)
        for data, source in zip(configs, sources):
            try:
                config = config_from_dict(data)
            except (RaybenchError, TypeError, AttributeError) as exc:
                raise RaybenchError(f"{path}: a configuration does not load ({exc})") from None
            wanted.setdefault(config.run_id, config)
            plan.sources.setdefault(config.run_id, str(source))
    states, plan.unusable_states = saved_states(store.root / "progress")
    for state in states:
        wanted.setdefault(state.run_id, state.config)
        plan.from_step[state.run_id] = state.step
    if not wanted:
        raise RaybenchError(
            f"nothing to resume in {store.root}: no recorded command and no saved training state"
        )
    finished = store.finished_ids()
    plan.failed = {rid for rid, status in statuses(store.read("runs")) if status == "failed"}
    for run_id, config in wanted.items():
        if run_id in finished:
            plan.finished += 1
        else:
            plan.configs.append(config)
    return plan
