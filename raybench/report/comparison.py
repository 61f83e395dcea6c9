"""Two configurations of an experiment side by side: ``raybench compare EXPERIMENT A B``.

A and B are solver names or configuration fingerprints (a unique prefix of 4 or more
characters will do). In every setting where both have runs, their seeds x tasks matrices
(:mod:`raybench.report.paired`) go through the comparison of
:mod:`raybench.report.significance` (seed-paired where both ran the same seeds from the
same networks, else as independent seeds), reported in full: per-seed means, the
difference, its 95% interval, the p-value (unadjusted: one pair, no family to correct
for), the method and why, the numbers of tasks and seeds, the variance terms, the
difference it would detect with 80% power (:mod:`raybench.report.power`) and, asked for a
difference, the seeds needed to detect it. A solver name that stands for
several configurations in a setting is ambiguous: the error lists their fingerprints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from raybench.errors import RaybenchError
from raybench.report import paired
from raybench.report.power import detectable, seeds_needed
from raybench.report.records import run_views, setting_label
from raybench.report.significance import Comparison
from raybench.report.views import completed_views

MIN_PREFIX = 4


@dataclass(frozen=True)
class Configuration:
    """One (setting, solver, configuration) of the store, with its runs."""

    setting: str
    solver: str
    config: str
    source: str | None
    differs: str | None
    views: tuple[dict, ...]

    @property
    def label(self) -> str:
        extra = [s for s in (self.source if self.source != "preset" else None, self.differs) if s]
        return self.solver + (f" ({'; '.join(extra)})" if extra else "")

    def matches(self, spec: str) -> bool:
        if spec in (self.solver, self.config):
            return True
        return len(spec) >= MIN_PREFIX and self.config.startswith(spec)


@dataclass(frozen=True)
class PairedResult:
    """A against B in one setting; ``comparison`` is None when they cannot be paired
    (``note`` says why)."""

    setting: str
    a: Configuration
    b: Configuration
    comparison: Comparison | None
    seeds_a: tuple[int, ...] = ()
    seeds_b: tuple[int, ...] = ()
    note: str | None = None


def configurations(runs: pa.Table) -> list[Configuration]:
    """Every configuration of the store, in report order (settings, then Table 2's)."""
    from raybench.report.records import aggregate_runs

    differs = {
        (r["setting"], r["solver"], r["config"]): (r["differs"], r["source"])
        for r in aggregate_runs(runs)
    }
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for _, view in run_views(runs, None):
        key = (setting_label(view["setting_key"]), str(view["solver"]), str(view["config"]))
        groups.setdefault(key, []).append(view)
    return [
        Configuration(
            setting=setting,
            solver=solver,
            config=config,
            source=differs.get((setting, solver, config), (None, None))[1],
            differs=differs.get((setting, solver, config), (None, None))[0],
            views=tuple(views),
        )
        for (setting, solver, config), views in groups.items()
    ]


def _describe(configs: Sequence[Configuration]) -> str:
    return ", ".join(f"{c.config} ({c.label}, {c.setting})" for c in configs)


def _pick(spec: str, setting: str, matches: list[Configuration]) -> Configuration:
    if len(matches) > 1:
        raise RaybenchError(
            f"{spec!r} is ambiguous in {setting}: {len(matches)} configurations, "
            + ", ".join(f"{c.config} ({c.label})" for c in matches)
            + "; name one by its fingerprint"
        )
    return matches[0]


def resolve_pairs(
    configs: Sequence[Configuration], a: str, b: str
) -> list[tuple[Configuration, Configuration]]:
    """The (A, B) configurations of every setting where both have runs; an error naming
    what the store holds when either matches nothing, or one is ambiguous."""
    for spec in (a, b):
        if not any(c.matches(spec) for c in configs):
            solvers = sorted({c.solver for c in configs})
            raise RaybenchError(
                f"no solver or configuration {spec!r} in the store: solvers "
                f"{', '.join(solvers)}; configurations {_describe(configs)}"
            )
    settings = list(dict.fromkeys(c.setting for c in configs))
    pairs = []
    for setting in settings:
        here = [c for c in configs if c.setting == setting]
        found_a = [c for c in here if c.matches(a)]
        found_b = [c for c in here if c.matches(b)]
        if not found_a or not found_b:
            continue
        pick_a, pick_b = _pick(a, setting, found_a), _pick(b, setting, found_b)
        if pick_a is pick_b:
            raise RaybenchError(
                f"{a!r} and {b!r} are the same configuration ({pick_a.config}) in {setting}"
            )
        pairs.append((pick_a, pick_b))
    if not pairs:
        where_a = sorted({c.setting for c in configs if c.matches(a)})
        where_b = sorted({c.setting for c in configs if c.matches(b)})
        raise RaybenchError(
            f"{a!r} and {b!r} share no setting: {a} in {'; '.join(where_a)}, "
            f"{b} in {'; '.join(where_b)}"
        )
    return pairs


def compare_pair(
    a: Configuration, b: Configuration, results: Mapping[str, paired.TaskResults]
) -> PairedResult:
    """The comparison of A and B in their setting (seed-paired where they share their
    seeds), or why there is none."""
    views_a = completed_views([({}, v) for v in a.views])
    views_b = completed_views([({}, v) for v in b.views])
    for config, views in ((a, views_a), (b, views_b)):
        if not views:
            return PairedResult(a.setting, a, b, None, note=f"{config.label}: no completed run")
    runs_a, runs_b = paired.lined_up(views_a, results), paired.lined_up(views_b, results)
    for config, runs in ((a, runs_a), (b, runs_b)):
        if runs is None:
            note = (
                f"{config.label}: no per-task test results for every completed run "
                "(stored by an older raybench), or runs tested on different tasks"
            )
            return PairedResult(a.setting, a, b, None, note=note)
    assert runs_a is not None and runs_b is not None
    if runs_a.keys != runs_b.keys:
        note = "tested on different test tasks: nothing to pair"
        return PairedResult(a.setting, a, b, None, note=note)
    return PairedResult(
        a.setting,
        a,
        b,
        paired.compare_runs(runs_a, runs_b),
        seeds_a=tuple(int(s) for s in runs_a.seeds if s is not None),
        seeds_b=tuple(int(s) for s in runs_b.seeds if s is not None),
    )


def compare_configurations(
    runs: pa.Table, tasks: pa.Table | None, a: str, b: str
) -> list[PairedResult]:
    """A against B in every setting where both have runs."""
    if runs.num_rows == 0:
        raise RaybenchError("the experiment has no finished runs to compare")
    results = paired.task_results(tasks)
    return [compare_pair(x, y, results) for x, y in resolve_pairs(configurations(runs), a, b)]


# The flat record of a comparison: JSON output and the API's DataFrame.
RECORD_COLUMNS = (
    "setting", "a", "a_solver", "a_source", "a_config", "b", "b_solver", "b_source", "b_config",
    "a_seeds", "a_seed_means", "a_mean", "b_seeds", "b_seed_means", "b_mean",
    "diff", "ci95_low", "ci95_high", "half_width", "p_value", "df", "se", "method",
    "paired", "why", "detectable_80", "detect", "seeds_needed",
    "tasks", "n_seeds_a", "n_seeds_b", "var_seeds", "var_tasks", "note",
)  # fmt: skip


def comparison_record(result: PairedResult, detect: float | None = None) -> dict[str, Any]:
    """The flat record of a comparison; with ``detect`` (points), the seeds on each side
    its method would need to detect that difference with 80% power."""
    c = result.comparison
    record: dict[str, Any] = dict.fromkeys(RECORD_COLUMNS)
    record.update(
        setting=result.setting,
        a=result.a.label,
        a_solver=result.a.solver,
        a_source=result.a.source,
        a_config=result.a.config,
        b=result.b.label,
        b_solver=result.b.solver,
        b_source=result.b.source,
        b_config=result.b.config,
        note=result.note,
    )
    if c is not None:
        record.update(
            a_seeds=list(result.seeds_a),
            a_seed_means=list(c.seed_means_a),
            a_mean=float(np.mean(c.seed_means_a)),
            b_seeds=list(result.seeds_b),
            b_seed_means=list(c.seed_means_b),
            b_mean=float(np.mean(c.seed_means_b)),
            diff=c.diff,
            ci95_low=c.low,
            ci95_high=c.high,
            half_width=c.half_width,
            p_value=c.p_value,
            df=c.df,
            se=c.se,
            method=c.method,
            paired=c.paired,
            why=c.why,
            detectable_80=detectable(c),
            detect=detect,
            seeds_needed=None if detect is None else seeds_needed(c, detect),
            tasks=c.tasks,
            n_seeds_a=c.seeds_a,
            n_seeds_b=c.seeds_b,
            var_seeds=c.variance.get("seeds"),
            var_tasks=c.variance.get("tasks"),
        )
    return record
