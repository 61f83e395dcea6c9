"""The report's content as plain records, built from the Parquet store alone.

The main table has one row per (setting, solver, configuration): setting = N-way K-shot plus
preset; configuration = the runs' ``config_fingerprint`` (every setting but the seed), so a
tuned configuration is its own row. Each row aggregates its seeds: run counts by status,
test accuracy over the completed seeds with a 95% interval, its difference to the best row
of its setting by the paired comparison of :mod:`raybench.report.significance`, the
stability measures of :mod:`raybench.report.stability`, cost, and the published reference
values of :mod:`raybench.report.references`. The records are stored as
``<experiment>/summary.parquet`` at full precision; :mod:`raybench.report.flat` writes them
as Markdown, CSV or JSON and :mod:`raybench.report.tables` renders them with Rich. Every
accuracy is in percent, as stored. A per-run view (``run_records``) stays available.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from raybench.assumption_checks import verdict
from raybench.config import PRESETS
from raybench.metrics import CURVE_COLUMNS
from raybench.report import paired
from raybench.report import references as refs
from raybench.report.stability import (
    curves_by_run,
    finite,
    mean_or_none,
    run_stability,
    seed_interval,
    std_or_none,
)
from raybench.report.text import solver_label
from raybench.report.tuning import TUNING_FIELDS, TUNING_NAMES, add_tuning, shown
from raybench.report.views import MISSING, completed_views
from raybench.solver_catalog import family_rank

# The aggregated table: the columns of summary.parquet and of every --format, in order.
SUMMARY_SCHEMA = pa.schema(
    [
        ("setting", pa.string()),  # "5-way 1-shot, paper"
        ("ways", pa.int64()),
        ("shots", pa.int64()),
        ("preset", pa.string()),
        ("solver", pa.string()),
        ("family", pa.string()),
        ("options", pa.string()),  # the solver's own knobs
        ("source", pa.string()),  # preset / config / tuned
        ("config", pa.string()),  # config_fingerprint
        ("differs", pa.string()),  # settings that differ from the solver's other configs here
        ("meta_steps", pa.int64()),
        ("runs", pa.int64()),
        ("seeds", pa.int64()),
        ("completed", pa.int64()),
        ("diverged", pa.int64()),
        ("failed", pa.int64()),
        ("errors", pa.string()),  # why runs failed or diverged, per distinct error
        ("test_acc", pa.float64()),  # %, mean over completed seeds
        ("test_ci95", pa.float64()),  # %, half-width of the 95% interval
        ("ci_over", pa.string()),  # "test tasks" (one seed) or "seeds" (several)
        ("test_std", pa.float64()),  # %, sample std across completed seeds
        # against the best row of the setting, paired over test tasks (report.paired):
        ("vs_best", pa.float64()),  # accuracy points, this row minus the best
        ("vs_best_ci95", pa.float64()),  # half-width of its 95% interval
        ("vs_best_p", pa.float64()),  # p-value, Holm-adjusted over the setting's rows
        ("vs_best_verdict", pa.string()),  # best / tied (not significantly worse) / worse
        ("vs_best_method", pa.string()),  # seed-paired / independent seeds / tasks only
        ("vs_best_why", pa.string()),  # why that method: what the seeds share, or not
        ("vs_best_detectable", pa.float64()),  # points detected with 80% power at 5%
        ("vs_best_se", pa.float64()),  # its standard error and degrees of freedom: what
        ("vs_best_df", pa.float64()),  # power at any other difference is computed from
        # a sweep's default against its tuned configuration (raybench.report.tuning):
        *TUNING_FIELDS,
        ("val_acc", pa.float64()),  # %, final validation accuracy, mean
        ("roughness", pa.float64()),  # accuracy points, mean over completed seeds
        ("steps_90", pa.float64()),  # meta-steps, mean over completed seeds
        ("steps_95", pa.float64()),
        ("wall_time_s", pa.float64()),  # mean over completed runs
        ("ms_per_step", pa.float64()),  # mean over completed and diverged runs
        ("peak_memory_mb", pa.float64()),  # max over completed and diverged runs
        # implicit solvers: "hold (n evaluations)" or "violated: <check> k/n, ..." over the
        # evaluation points of its runs (raybench.assumptions)
        ("assumptions", pa.string()),
        ("ref_acc", pa.float64()),  # %, the closest reference
        ("ref_pm", pa.float64()),  # its published ±, if any
        ("ref_method", pa.string()),
        ("ref_source", pa.string()),
        ("ref_protocol", pa.string()),  # "same protocol" / "protocol differs: ..."
        ("vs_ref", pa.string()),  # within / above / below / not comparable: why
        ("other_refs", pa.string()),  # the other references, "; "-separated, with verdicts
    ]
)

RUN_RECORD_SCHEMA = pa.schema(
    [
        ("setting", pa.string()),
        ("solver", pa.string()),
        ("family", pa.string()),
        ("options", pa.string()),
        ("source", pa.string()),
        ("config", pa.string()),
        ("run_id", pa.string()),
        ("seed", pa.int64()),
        ("status", pa.string()),
        ("test_acc", pa.float64()),
        ("test_ci95", pa.float64()),
        ("val_acc", pa.float64()),
        ("roughness", pa.float64()),
        ("steps_90", pa.int64()),
        ("steps_95", pa.int64()),
        ("evaluations", pa.int64()),
        ("wall_time_s", pa.float64()),
        ("ms_per_step", pa.float64()),
        ("peak_memory_mb", pa.float64()),
        ("assumptions", pa.string()),
        ("steps_done", pa.int64()),
        ("meta_steps", pa.int64()),
        ("error", pa.string()),
    ]
)


def solver_options(row: Mapping[str, Any]) -> str:
    """A solver's own knobs, from the stored config: ``lam=2 cg_steps=5``."""
    try:
        options = json.loads(row.get("config_json") or "{}").get("solver_options", {})
    except ValueError:
        return "?"
    return (
        " ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in options.items()
            if v is not None
        )
        or MISSING
    )


# ---------------------------------------------------------------- settings and ordering


def setting_key(row: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(ways, shots, preset): what the report groups by."""
    return row.get("ways"), row.get("shots"), row.get("preset")


def setting_label(key: tuple[Any, Any, Any]) -> str:
    ways, shots, preset = ("?" if v is None else v for v in key)
    return f"{ways}-way {shots}-shot, {preset}"


def _setting_order(key: tuple[Any, Any, Any]) -> tuple:
    ways, shots, preset = key
    presets = list(PRESETS)
    rank = presets.index(preset) if preset in presets else len(presets)
    return (
        ways if ways is not None else math.inf,
        shots if shots is not None else math.inf,
        rank,
        str(preset),
    )


def config_key(row: Mapping[str, Any]) -> str:
    """The configuration fingerprint; for stores that predate it, a hash of the stored
    config without its seed, else the solver (all its runs in one row)."""
    if row.get("config_fingerprint"):
        return str(row["config_fingerprint"])
    try:
        data = json.loads(row.get("config_json") or "")
    except ValueError:
        data = None
    if isinstance(data, dict):
        data.pop("seed", None)
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"{row.get('solver')}?"


# ---------------------------------------------------------------- per run


def diagnostics_by_run(curves: pa.Table | None) -> dict[str, list[dict[str, Any]]]:
    """Each run's evaluation points that carry assumption measurements (implicit solvers)."""
    if curves is None or not {"run_id", "diag_tasks"} <= set(curves.column_names):
        return {}
    names = [n for n in ("run_id", *CURVE_COLUMNS) if n in curves.column_names]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in curves.select(names).to_pylist():
        if row.get("diag_tasks"):
            out.setdefault(str(row["run_id"]), []).append(row)
    return out


def _run_view(
    row: Mapping[str, Any],
    points: Sequence[tuple[int, float]],
    diagnostics: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A run's raw values (fractions, unrounded) with its stability measures."""
    stab = run_stability(points)
    return {
        "setting_key": setting_key(row),
        "solver": row.get("solver"),
        "family": row.get("family") or registry_family(row.get("solver")),
        "options": None if (options := solver_options(row)) == MISSING else options,
        "source": row.get("source"),
        "config": config_key(row),
        "run_id": row.get("run_id"),
        "seed": row.get("seed"),
        "status": row.get("status"),
        "test_acc": finite(row.get("test_acc_mean")),
        "test_ci95": finite(row.get("test_acc_ci95")),
        "val_acc": finite(row.get("final_val_acc")),
        "roughness": stab.roughness,
        "steps_90": stab.steps_90,
        "steps_95": stab.steps_95,
        "evaluations": stab.evaluations,
        "wall_time_s": finite(row.get("wall_time_s")),
        "ms_per_step": finite(row.get("ms_per_step")),
        "peak_memory_mb": finite(row.get("peak_memory_mb")),
        "assumptions": verdict(row.get("solver"), diagnostics),
        "diagnostics": list(diagnostics),
        "steps_done": row.get("steps_done"),
        "meta_steps": row.get("meta_steps"),
        "error": row.get("error") or None,
        "init_fingerprint": row.get("init_fingerprint"),  # what its seed shares (pairing)
        "stream_fingerprint": row.get("stream_fingerprint"),
    }


def registry_family(solver: Any) -> str | None:
    """A solver's family from the registry: a run that failed before its solver was built
    has none stored."""
    from raybench.solver_catalog import family_of

    return family_of(solver)


def run_views(runs: pa.Table, curves: pa.Table | None) -> list[tuple[dict, dict]]:
    points = curves_by_run(curves) if curves is not None else {}
    diagnostics = diagnostics_by_run(curves)
    out = [
        (
            row,
            _run_view(
                row, points.get(row.get("run_id"), []), diagnostics.get(row.get("run_id"), [])
            ),
        )
        for row in runs.to_pylist()
    ]
    return sorted(
        out,
        key=lambda rv: (
            _setting_order(rv[1]["setting_key"]),
            family_rank(rv[1]["family"]),
            str(rv[1]["solver"]),
            str(rv[1]["source"]),
            rv[1]["config"],
            rv[1]["seed"] if rv[1]["seed"] is not None else -1,
            str(rv[1]["run_id"]),
        ),
    )


def run_records(runs: pa.Table, curves: pa.Table | None = None) -> list[dict[str, Any]]:
    """One plain record per run (accuracies in %, roughness in points), in report order:
    the per-run view, with each run's own stability measures."""
    out = []
    for _, view in run_views(runs, curves):
        record = {name: view.get(name) for name in RUN_RECORD_SCHEMA.names}
        record["setting"] = setting_label(view["setting_key"])
        out.append(record)
    return out


# ---------------------------------------------------------------- aggregated


def aggregate_runs(
    runs: pa.Table,
    curves: pa.Table | None = None,
    tasks: pa.Table | None = None,
    *,
    defaults: bool = False,
    default_selected: Mapping[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """One plain record per (setting, solver, configuration), in report order: the main
    table of ``raybench report`` and the content of ``summary.parquet``.

    Accuracy, validation accuracy and the stability measures are over the completed runs
    (a diverged run is counted in ``diverged``, not averaged in). The test interval is the
    run's own 95% interval over the test tasks when one seed completed, else the Student-t
    95% interval of the mean over the completed seeds (``ci_over`` says which). With the
    per-task results (``tasks``), each row is compared with the best of its setting
    (``vs_best*``, see :mod:`raybench.report.paired`); without them those stay empty.

    A sweep's store holds each solver's default and tuned configuration: the table shows
    the tuned rows with the default's accuracy and the tuning gain beside them
    (:mod:`raybench.report.tuning`; ``default_selected`` from the trials table), or with
    ``defaults`` the default rows; the best row is the best of the rows shown.
    """
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row, view in run_views(runs, curves):
        key = (view["setting_key"], view["solver"], view["config"])
        groups.setdefault(key, []).append((row, view))
    records = [_aggregate(members) for members in groups.values()]
    differs = _config_differences([members[0][0] for members in groups.values()])
    for record, text in zip(records, differs):
        record["differs"] = text
    members, results = list(groups.values()), paired.task_results(tasks)
    add_tuning(records, members, results, default_selected or {})
    keep = shown(records, defaults)
    records, members = [records[i] for i in keep], [members[i] for i in keep]
    _add_versus_best(records, members, results)
    return records


VERSUS_BEST = (
    "vs_best", "vs_best_ci95", "vs_best_p", "vs_best_verdict", "vs_best_method", "vs_best_why",
    "vs_best_detectable", "vs_best_se", "vs_best_df",
)  # fmt: skip


def _add_versus_best(
    records: list[dict[str, Any]],
    groups: Sequence[Sequence[tuple[dict, dict]]],
    results: Mapping[str, paired.TaskResults],
) -> None:
    by_setting: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_setting.setdefault(record["setting"], []).append(i)
    for members in by_setting.values():
        matrices = {i: paired.lined_up(completed_views(groups[i]), results) for i in members}
        means = {i: records[i]["test_acc"] for i in members}
        for i, versus in paired.versus_best(matrices, means).items():
            records[i].update(  # type: ignore[index]
                vs_best=versus.diff,
                vs_best_ci95=versus.half_width,
                vs_best_p=versus.p_adjusted,
                vs_best_verdict=versus.verdict,
                vs_best_method=versus.method,
                vs_best_why=None if versus.comparison is None else versus.comparison.why,
                vs_best_detectable=versus.detectable,
                vs_best_se=None if versus.comparison is None else versus.comparison.se,
                vs_best_df=None if versus.comparison is None else versus.comparison.df,
            )


def _flat_config(row: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        data = json.loads(row.get("config_json") or "")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    options = data.pop("solver_options", None) or {}
    data.pop("seed", None)
    data.update({f"{data.get('solver')}.{k}": v for k, v in options.items()})
    return data


def _config_differences(rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """For each configuration, the settings (``key=value``) whose values differ among the
    configurations of the same solver in the same setting: what a tuned or studied row
    changed. ``None`` for a solver's only configuration or without a stored config."""
    configs = [_flat_config(r) for r in rows]
    peers: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        peers.setdefault((setting_key(row), row.get("solver")), []).append(i)
    out: list[str | None] = [None] * len(rows)
    for members in peers.values():
        known = {i: c for i in members if (c := configs[i]) is not None}
        if len(known) < 2:
            continue
        keys = sorted({k for config in known.values() for k in config})
        varying = [k for k in keys if len({json.dumps(c.get(k)) for c in known.values()}) > 1]
        for i, config in known.items():
            out[i] = " ".join(f"{k}={_plain(config.get(k))}" for k in varying) or None
    return out


def _aggregate(members: list[tuple[dict, dict]]) -> dict[str, Any]:
    row, first = members[0]
    views = [v for _, v in members]
    done = [v for v in views if v["status"] == "completed"]
    finished = [v for v in views if v["status"] in ("completed", "diverged")]
    tests = [v["test_acc"] for v in done if v["test_acc"] is not None]
    if len(tests) > 1:
        test_ci, ci_over = seed_interval(tests), "seeds"
    elif tests:
        one = next(v for v in done if v["test_acc"] is not None)
        test_ci, ci_over = one["test_ci95"], "test tasks"
    else:
        test_ci, ci_over = None, None
    test_acc = mean_or_none(tests)
    memories = [m for v in finished if (m := v["peak_memory_mb"]) is not None]
    statuses = [v["status"] for v in views]
    ways, shots, preset = first["setting_key"]
    record: dict[str, Any] = {
        "setting": setting_label(first["setting_key"]),
        "ways": ways,
        "shots": shots,
        "preset": preset,
        "solver": first["solver"],
        "family": first["family"],
        "options": first["options"],
        "source": first["source"],
        "config": first["config"],
        "differs": None,  # filled in across configurations by aggregate_runs
        "meta_steps": first["meta_steps"],
        "runs": len(views),
        "seeds": len({v["seed"] for v in views}),
        "completed": statuses.count("completed"),
        "diverged": statuses.count("diverged"),
        "failed": statuses.count("failed"),
        "errors": run_errors(views),
        "test_acc": test_acc,
        "test_ci95": test_ci,
        "ci_over": ci_over,
        "test_std": std_or_none(tests),
        **dict.fromkeys(VERSUS_BEST),  # filled in across configurations by aggregate_runs
        **dict.fromkeys(TUNING_NAMES),  # filled in for a sweep's default and tuned rows
        "val_acc": mean_or_none(v["val_acc"] for v in done),
        "roughness": mean_or_none(v["roughness"] for v in done),
        "steps_90": mean_or_none(v["steps_90"] for v in done),
        "steps_95": mean_or_none(v["steps_95"] for v in done),
        "wall_time_s": mean_or_none(v["wall_time_s"] for v in done),
        "ms_per_step": mean_or_none(v["ms_per_step"] for v in finished),
        "peak_memory_mb": max(memories) if memories else None,
        "assumptions": verdict(first["solver"], [d for v in finished for d in v["diagnostics"]]),
    }
    record.update(_reference_columns(row, record["test_acc"], record["test_ci95"]))
    return record


def run_errors(views: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a configuration's runs failed or diverged: each distinct error once, with the
    seeds and the steps they reached, ``"; "``-separated."""
    by_error: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for v in views:
        if v["status"] != "completed" and v.get("error"):
            by_error.setdefault((str(v["status"]), str(v["error"])), []).append(v)
    parts = []
    for (status, error), members in by_error.items():
        where = ", ".join(
            f"{v['seed']} at step {v['steps_done']}/{v['meta_steps']}" for v in members
        )
        parts.append(f"{status}, seed{'s' if len(members) > 1 else ''} {where}: {error}")
    return "; ".join(parts) or None


def _reference_columns(row: Mapping[str, Any], acc: float | None, ci: float | None) -> dict:
    matches = refs.references_for(row)
    empty = dict.fromkeys(("ref_acc", "ref_pm", "ref_method", "ref_source", "ref_protocol"))
    if not matches:
        return {**empty, "vs_ref": None, "other_refs": None}
    best, others = matches[0], matches[1:]
    ref = best.reference
    other = "; ".join(
        f"{refs.describe(m)}: {refs.match_verdict(m, acc, ci) or '?'}" for m in others
    )
    return {
        "ref_acc": ref.value,
        "ref_pm": ref.pm,
        "ref_method": ref.method,
        "ref_source": ref.source,
        "ref_protocol": best.protocol_text,
        "vs_ref": refs.match_verdict(best, acc, ci),
        "other_refs": other or None,
    }


def summary_arrow(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The records as the typed table stored in ``summary.parquet``."""
    return pa.Table.from_pylist([dict(r) for r in records], schema=SUMMARY_SCHEMA)


# ---------------------------------------------------------------- captions


def setting_captions(runs: pa.Table) -> dict[str, str]:
    """Per setting label, the protocol choices that change published numbers."""
    by_setting: dict[str, list[dict]] = {}
    for row in runs.to_pylist():
        by_setting.setdefault(setting_label(setting_key(row)), []).append(row)
    return {label: _protocol_line(rows) for label, rows in by_setting.items()}


def _protocol_line(rows: Sequence[Mapping[str, Any]]) -> str:
    def values(key: str) -> str:
        """One value, or each value with the solvers that use it (tuned runs differ per
        solver: ``0.044 (fomaml), 0.778 (imaml)``); ``/`` where a solver has several."""
        seen = sorted({_plain(r.get(key)) for r in rows if r.get(key) is not None})
        if len(seen) <= 1:
            return seen[0] if seen else "?"
        by_solver: dict[str, set[str]] = {}
        for r in rows:
            if r.get(key) is not None:
                by_solver.setdefault(str(r.get("solver")), set()).add(_plain(r[key]))
        if any(len(v) > 1 for v in by_solver.values()):
            return "/".join(seen)
        users = {v: sorted(s for s, (w,) in by_solver.items() if w == v) for v in seen}
        return ", ".join(f"{v} ({', '.join(users[v])})" for v in seen)

    return ", ".join(
        [
            f"{values('query')} query/class",
            f"inner lr {values('inner_lr')} x {values('inner_steps')} steps "
            f"(eval {values('eval_inner_steps')})",
            f"outer lr {values('outer_lr')}",
            f"meta-batch {values('meta_batch')}",
            f"meta-steps {values('meta_steps')}",
            f"split {values('split')}",
            f"bn {values('bn')}",
            f"rotations {values('rotations')}",
            f"test tasks {values('test_tasks_n')}",
            f"device {values('device')}",
        ]
    )


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_STABILITY_NOTE = (
    "roughness: mean absolute change between consecutive evaluations of the validation "
    "accuracy after a centred moving average of width 3, in accuracy points (needs 4 "
    "evaluations); steps to 90%/95%: first evaluation step whose validation accuracy reaches "
    "that fraction of the run's final validation accuracy; both averaged over completed seeds."
)
_REFERENCE_NOTE = (
    "published accuracies for the solver at the setting (the report's Table 2 only for preset "
    "paper), the closest first; within = raybench's interval and the reference's overlap, "
    "above/below = entirely above/below, given only for the same protocol and a raybench "
    f"interval of at most ±{refs.MAX_HALF_WIDTH:g} points (else not comparable, with why); a "
    "reference whose protocol differs is context, not a target."
)
_ASSUMPTIONS_NOTE = (
    "what an implicit solver's meta-gradient rests on, measured at every evaluation point "
    "on a few fixed validation tasks: hold, or each violated check with the evaluations it "
    "failed at (not stationary: the inner problem is not solved; indefinite: I + H/lam is "
    "not positive definite; series diverges: rho(alpha H) >= 1; inaccurate solve: the "
    "linear system's relative residual is above its tolerance); see docs/solvers.md."
)
_VERSUS_NOTE = (
    "difference in test accuracy to the best configuration of the setting (accuracy points), "
    "over the same test tasks and accounting for seed-to-seed variation, with its 95% "
    "interval: seed-paired where both ran the same seeds from the same networks (common "
    "random numbers), else with the seeds modelled as independent (vs_best_method and "
    "vs_best_why say which and why; see docs/reading-results.md); p-values Holm-adjusted over the "
    "setting's comparisons with the best; vs_best_detectable: the difference the "
    "comparison would detect with 80% power at 5%, from its standard error and degrees of "
    "freedom (vs_best_se, vs_best_df)"
)
METHOD_TEXT = {
    "seed-paired": "seed-paired (per-seed differences: each seed shared its initial network "
    "and the test tasks with the best row's)",
    "independent seeds": "with the seeds modelled as independent (not the same seeds, or "
    "no record of what they share)",
    "tasks only": "paired over the test tasks only (one seed each)",
}


def method_note(records: Sequence[Mapping[str, Any]]) -> str | None:
    """How the vs-best comparisons of ``records`` were made: one method for every row, or
    each method with its rows."""
    rows: dict[str, list[str]] = {}
    for r in records:
        if r.get("vs_best_method"):
            rows.setdefault(str(r["vs_best_method"]), []).append(solver_label(r))
    if not rows:
        return None
    if len(rows) == 1:
        return f"{METHOD_TEXT.get(next(iter(rows)), next(iter(rows)))} for every row"
    return "; ".join(f"{METHOD_TEXT.get(m, m)} for {', '.join(n)}" for m, n in rows.items())


# Under the Rich tables (their column names).
NOTES = (
    "Solver: name (its configuration's source unless a preset), family, own options, and "
    "the settings that differ from the solver's other configurations in the setting. "
    "Runs: completed/diverged/failed. Test acc.: mean over the completed seeds, in %; ± is "
    "the 95% interval over the test tasks when one seed completed, else the Student-t 95% "
    "interval over the completed seeds; Std: sample std across completed seeds. ✗: why "
    "runs failed or diverged, under the table of their setting.",
    f"Δ best: {_VERSUS_NOTE}; ★ = not significantly worse than the best (adjusted p ≥ 0.05).",
    f"Rough. = {_STABILITY_NOTE}",
    f"Assumptions (implicit solvers, under the solver's name): {_ASSUMPTIONS_NOTE}",
    f"Reference: {_REFERENCE_NOTE} ≠ marks a differing protocol. T2 = the report's Table 2; "
    "MAML'17 = Finn et al. 2017, Table 1; Reptile'18 = Nichol et al. 2018 (with "
    "transduction); iMAML'19 GD/HF = Rajeswaran et al. 2019, Table 2.",
)

# Under the Markdown table (the record's column names).
FLAT_NOTES = (
    "test_acc: mean over the completed seeds, in %; test_ci95: the 95% interval over the test "
    "tasks when one seed completed (ci_over = test tasks), else the Student-t 95% interval "
    "over the completed seeds (ci_over = seeds); test_std: sample std across completed seeds; "
    "errors: why runs failed or diverged (seed, step reached, error).",
    f"vs_best, vs_best_ci95, vs_best_p: {_VERSUS_NOTE}; vs_best_verdict: best, tied (not "
    "significantly worse than the best, adjusted p ≥ 0.05) or worse.",
    f"{_STABILITY_NOTE[0].upper()}{_STABILITY_NOTE[1:]}",
    f"assumptions: {_ASSUMPTIONS_NOTE}",
    f"ref_*: {_REFERENCE_NOTE}",
)


def caption_lines(runs: pa.Table) -> list[str]:
    """The caption under the flat formats: one protocol line per setting, then the notes."""
    captions = setting_captions(runs)
    order = sorted({setting_key(r) for r in runs.to_pylist()}, key=_setting_order)
    lines = [f"{setting_label(k)}: {captions[setting_label(k)]}" for k in order]
    return lines + list(FLAT_NOTES)
