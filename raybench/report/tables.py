"""The report, built from the Parquet store alone, in the spirit of the report's Table 2.

The main table has one row per (setting, solver, configuration): setting = N-way K-shot plus
preset; configuration = the runs' ``config_fingerprint`` (every setting but the seed), so a
tuned configuration is its own row. Each row aggregates its seeds: run counts by status,
test accuracy over the completed seeds with a 95% interval, the stability measures of
:mod:`raybench.report.stability`, cost, and the published reference values of
:mod:`raybench.report.references`. The same plain records are stored as
``<experiment>/summary.parquet`` and written as Markdown, CSV or JSON; Rich renders them.
A per-run view (``runs_table``, ``run_records``) stays available.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from rich.table import Table

from raybench.config import PRESETS
from raybench.report import references as refs
from raybench.report.stability import (
    curves_by_run,
    finite,
    mean_or_none,
    run_stability,
    seed_interval,
    std_or_none,
)
from raybench.solvers.base import family_rank

# Table 2's order: baselines, then first-order up to exact second-order.

BEST = "bold green"
FORMATS = ("rich", "markdown", "csv", "json")
MISSING = "—"

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
        ("test_acc", pa.float64()),  # %, mean over completed seeds
        ("test_ci95", pa.float64()),  # %, half-width of the 95% interval
        ("ci_over", pa.string()),  # "test tasks" (one seed) or "seeds" (several)
        ("test_std", pa.float64()),  # %, sample std across completed seeds
        ("val_acc", pa.float64()),  # %, final validation accuracy, mean
        ("roughness", pa.float64()),  # accuracy points, mean over completed seeds
        ("steps_90", pa.float64()),  # meta-steps, mean over completed seeds
        ("steps_95", pa.float64()),
        ("wall_time_s", pa.float64()),  # mean over completed runs
        ("ms_per_step", pa.float64()),  # mean over completed and diverged runs
        ("peak_memory_mb", pa.float64()),  # max over completed and diverged runs
        ("ref_acc", pa.float64()),  # %, the closest reference
        ("ref_pm", pa.float64()),  # its published ±, if any
        ("ref_method", pa.string()),
        ("ref_source", pa.string()),
        ("ref_protocol", pa.string()),  # "same protocol" / "protocol differs: ..."
        ("vs_ref", pa.string()),  # within / above / below
        ("other_refs", pa.string()),  # the other references, "; "-separated, with verdicts
    ]
)

RUNS_SCHEMA = pa.schema(
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
        ("steps_done", pa.int64()),
        ("meta_steps", pa.int64()),
    ]
)


def _num(value: Any) -> float | None:
    return finite(value)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _pct(value: Any) -> float | None:
    x = finite(value)
    return None if x is None else 100 * x


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_memory(mb: float | None) -> str:
    if mb is None:
        return MISSING
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


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


def _config_key(row: Mapping[str, Any]) -> str:
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


def _run_view(row: Mapping[str, Any], points: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """A run's raw values (fractions, unrounded) with its stability measures."""
    stab = run_stability(points)
    return {
        "setting_key": setting_key(row),
        "solver": row.get("solver"),
        "family": row.get("family"),
        "options": None if (options := solver_options(row)) == MISSING else options,
        "source": row.get("source"),
        "config": _config_key(row),
        "run_id": row.get("run_id"),
        "seed": row.get("seed"),
        "status": row.get("status"),
        "test_acc": _num(row.get("test_acc_mean")),
        "test_ci95": _num(row.get("test_acc_ci95")),
        "val_acc": _num(row.get("final_val_acc")),
        "roughness": stab.roughness,
        "steps_90": stab.steps_90,
        "steps_95": stab.steps_95,
        "evaluations": stab.evaluations,
        "wall_time_s": _num(row.get("wall_time_s")),
        "ms_per_step": _num(row.get("ms_per_step")),
        "peak_memory_mb": _num(row.get("peak_memory_mb")),
        "steps_done": row.get("steps_done"),
        "meta_steps": row.get("meta_steps"),
    }


def _views(runs: pa.Table, curves: pa.Table | None) -> list[tuple[dict, dict]]:
    points = curves_by_run(curves) if curves is not None else {}
    out = [(row, _run_view(row, points.get(row.get("run_id"), []))) for row in runs.to_pylist()]
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
    for _, view in _views(runs, curves):
        record = {name: view.get(name) for name in RUNS_SCHEMA.names}
        record["setting"] = setting_label(view["setting_key"])
        for key in ("test_acc", "test_ci95", "val_acc", "roughness"):
            record[key] = _round(None if view[key] is None else 100 * view[key], 4)
        record["wall_time_s"] = _round(view["wall_time_s"], 2)
        record["ms_per_step"] = _round(view["ms_per_step"], 3)
        record["peak_memory_mb"] = _round(view["peak_memory_mb"], 1)
        out.append(record)
    return out


# ---------------------------------------------------------------- aggregated


def summary_records(runs: pa.Table, curves: pa.Table | None = None) -> list[dict[str, Any]]:
    """One plain record per (setting, solver, configuration), in report order: the main
    table of ``raybench report`` and the content of ``summary.parquet``.

    Accuracy, validation accuracy and the stability measures are over the completed runs
    (a diverged run is counted in ``diverged``, not averaged in). The test interval is the
    run's own 95% interval over the test tasks when one seed completed, else the Student-t
    95% interval of the mean over the completed seeds (``ci_over`` says which).
    """
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row, view in _views(runs, curves):
        key = (view["setting_key"], view["solver"], view["config"])
        groups.setdefault(key, []).append((row, view))
    records = [_aggregate(members) for members in groups.values()]
    differs = _config_differences([members[0][0] for members in groups.values()])
    for record, text in zip(records, differs):
        record["differs"] = text
    return records


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
        "differs": None,  # filled in across configurations by summary_records
        "meta_steps": first["meta_steps"],
        "runs": len(views),
        "seeds": len({v["seed"] for v in views}),
        "completed": statuses.count("completed"),
        "diverged": statuses.count("diverged"),
        "failed": statuses.count("failed"),
        "test_acc": _round(_scaled(test_acc), 2),
        "test_ci95": _round(_scaled(test_ci), 2),
        "ci_over": ci_over,
        "test_std": _round(_scaled(std_or_none(tests)), 2),
        "val_acc": _round(_scaled(mean_or_none(v["val_acc"] for v in done)), 2),
        "roughness": _round(_scaled(mean_or_none(v["roughness"] for v in done)), 3),
        "steps_90": _round(mean_or_none(v["steps_90"] for v in done), 1),
        "steps_95": _round(mean_or_none(v["steps_95"] for v in done), 1),
        "wall_time_s": _round(mean_or_none(v["wall_time_s"] for v in done), 1),
        "ms_per_step": _round(mean_or_none(v["ms_per_step"] for v in finished), 2),
        "peak_memory_mb": _round(max(memories) if memories else None, 1),
    }
    record.update(_reference_columns(row, record["test_acc"], record["test_ci95"]))
    return record


def _scaled(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _reference_columns(row: Mapping[str, Any], acc: float | None, ci: float | None) -> dict:
    matches = refs.references_for(row)
    empty = dict.fromkeys(("ref_acc", "ref_pm", "ref_method", "ref_source", "ref_protocol"))
    if not matches:
        return {**empty, "vs_ref": None, "other_refs": None}
    best, others = matches[0], matches[1:]
    ref = best.reference
    other = "; ".join(
        f"{refs.describe(m)}: {refs.verdict(acc, ci, m.reference.value, m.reference.pm) or '?'}"
        for m in others
    )
    return {
        "ref_acc": ref.value,
        "ref_pm": ref.pm,
        "ref_method": ref.method,
        "ref_source": ref.source,
        "ref_protocol": best.protocol_text,
        "vs_ref": refs.verdict(acc, ci, ref.value, ref.pm),
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
        seen = sorted({_plain(r.get(key)) for r in rows if r.get(key) is not None})
        return "/".join(seen) if seen else "?"

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
    "above/below = entirely above/below; a reference whose protocol differs is context, not "
    "a target."
)

# Under the Rich tables (their column names).
NOTES = (
    "Solver: name (its configuration's source unless a preset), family, own options, and "
    "the settings that differ from the solver's other configurations in the setting. "
    "Runs: completed/diverged/failed. Test acc.: mean over the completed seeds, in %; ± is "
    "the 95% interval over the test tasks when one seed completed, else the Student-t 95% "
    "interval over the completed seeds; Std: sample std across completed seeds.",
    f"Rough. = {_STABILITY_NOTE}",
    f"Reference: {_REFERENCE_NOTE} ≠ marks a differing protocol. T2 = the report's Table 2; "
    "MAML'17 = Finn et al. 2017, Table 1; Reptile'18 = Nichol et al. 2018 (with "
    "transduction); iMAML'19 GD/HF = Rajeswaran et al. 2019, Table 2.",
)

# Under the Markdown table (the record's column names).
FLAT_NOTES = (
    "test_acc: mean over the completed seeds, in %; test_ci95: the 95% interval over the test "
    "tasks when one seed completed (ci_over = test tasks), else the Student-t 95% interval "
    "over the completed seeds (ci_over = seeds); test_std: sample std across completed seeds.",
    f"{_STABILITY_NOTE[0].upper()}{_STABILITY_NOTE[1:]}",
    f"ref_*: {_REFERENCE_NOTE}",
)


def caption_lines(runs: pa.Table) -> list[str]:
    """The caption under the flat formats: one protocol line per setting, then the notes."""
    captions = setting_captions(runs)
    order = sorted({setting_key(r) for r in runs.to_pylist()}, key=_setting_order)
    lines = [f"{setting_label(k)}: {captions[setting_label(k)]}" for k in order]
    return lines + list(FLAT_NOTES)


# ---------------------------------------------------------------- flat formats


def plain_cell(value: Any) -> str:
    """A value as the Markdown table writes it: ``—`` for missing, else ``str``."""
    return MISSING if value is None else str(value)


def to_markdown(
    records: Sequence[Mapping[str, Any]], names: Sequence[str], captions: Iterable[str] = ()
) -> str:
    """A pipe table (one line per record), then the caption lines as a list under it."""

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(names), line("---" for _ in names)]
    lines += [line(plain_cell(r.get(n)) for n in names) for r in records]
    captions = list(captions)
    if captions:
        lines.append("")
        lines += [f"- {c}" for c in captions]
    return "\n".join(lines) + "\n"


def to_csv(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """Header and one row per record; missing values empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for r in records:
        writer.writerow(["" if r.get(n) is None else r.get(n) for n in names])
    return buffer.getvalue()


def to_json(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """A list of records; missing values null."""
    data = [{n: r.get(n) for n in names} for r in records]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_flat(
    records: Sequence[Mapping[str, Any]],
    fmt: str,
    names: Sequence[str] | None = None,
    captions: Iterable[str] = (),
) -> str:
    """The same table as Markdown, CSV or JSON (plain values, no markup)."""
    names = list(names or SUMMARY_SCHEMA.names)
    if fmt == "markdown":
        return to_markdown(records, names, captions)
    if fmt == "csv":
        return to_csv(records, names)
    if fmt == "json":
        return to_json(records, names)
    raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS[1:])}")


# ---------------------------------------------------------------- Rich


def _best_values(records: Sequence[Mapping[str, Any]], spec: Mapping[str, bool]) -> dict:
    """Per column, the best value (highest or lowest) among completed runs, or summary rows
    with a completed run; nothing to highlight when there is only one row."""
    out: dict[str, float | None] = dict.fromkeys(spec)
    if len(records) < 2:
        return out

    def eligible(r: Mapping[str, Any]) -> bool:
        return r.get("status") == "completed" if "status" in r else bool(r.get("completed"))

    for key, highest in spec.items():
        values = [v for r in records if eligible(r) and (v := _num(r.get(key))) is not None]
        if values:
            out[key] = max(values) if highest else min(values)
    return out


SUMMARY_BEST = {
    "test_acc": True,
    "val_acc": True,
    "test_std": False,
    "roughness": False,
    "steps_90": False,
    "steps_95": False,
    "wall_time_s": False,
    "ms_per_step": False,
    "peak_memory_mb": False,
}


def _mark(text: str, value: Any, best: float | None) -> str:
    good = best is not None and _num(value) is not None and _num(value) == best
    return f"[{BEST}]{text}[/]" if good else text


def _acc_text(acc: Any, ci: Any) -> str:
    if acc is None:
        return MISSING
    return f"{acc:.2f} ± {ci:.2f}" if ci is not None else f"{acc:.2f}"


def _fixed(value: Any, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def reference_lines(row: Mapping[str, Any], acc: float | None, ci: float | None) -> str:
    """Every reference of a row, one line each: ``82.7 report T2: within``; a reference
    whose protocol differs is marked ``≠`` and dimmed (context, not a target)."""
    lines = []
    for m in refs.references_for(row):
        ref = m.reference
        pm = f"±{ref.pm:g}" if ref.pm is not None else ""
        verdict = refs.verdict(acc, ci, ref.value, ref.pm) or MISSING
        text = f"{ref.value:g}{pm} {ref.short or ref.source}: {verdict}"
        lines.append(text if m.same_protocol else f"[dim]≠ {text}[/]")
    return "\n".join(lines) or MISSING


def _solver_cell(record: Mapping[str, Any]) -> str:
    """Solver (and its config's source unless a preset), family, own options: one cell, so
    the wide table fits a 160-column log."""
    source = record.get("source")
    head = str(record["solver"]) + (f" ({source})" if source not in (None, "preset") else "")
    lines = [head, f"[dim]{record.get('family') or MISSING}[/]"]
    for key in ("options", "differs"):
        if record.get(key) is not None:
            lines.append(f"[dim]{record[key]}[/]")
    return "\n".join(lines)


SUMMARY_COLUMNS = (
    ("Solver", "left"),
    ("Runs", "right"),
    ("Test acc. % (95% CI)", "right"),
    ("Std", "right"),
    ("Val. %", "right"),
    ("Rough.", "right"),
    ("Steps 90/95%", "right"),
    ("Wall", "right"),
    ("ms/step", "right"),
    ("Mem.", "right"),
    ("Reference %", "left"),
)


def summary_tables(
    records: Sequence[Mapping[str, Any]],
    runs: pa.Table,
    title: str = "raybench",
) -> list[Table]:
    """The aggregated records as Rich tables, one per setting, best values per setting in
    bold green; the notes under the last."""
    captions = setting_captions(runs)
    first_rows: dict[tuple[str, str], dict] = {}
    for row in runs.to_pylist():
        first_rows.setdefault((setting_label(setting_key(row)), _config_key(row)), row)
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_setting.setdefault(record["setting"], []).append(record)
    tables = []
    for label, rows in by_setting.items():
        out = Table(title=f"{title} — {label}", title_justify="left", header_style="bold")
        for name, justify in SUMMARY_COLUMNS:
            out.add_column(name, justify=justify, no_wrap=name != "Solver")  # type: ignore[arg-type]
        best = _best_values(rows, SUMMARY_BEST)
        for r in rows:
            raw = first_rows.get((label, r["config"]), {})
            diverged = f"[red]{r['diverged']}[/]" if r["diverged"] else "0"
            failed = f"[red]{r['failed']}[/]" if r["failed"] else "0"
            steps = f"{_fixed(r['steps_90'], 0)}/{_fixed(r['steps_95'], 0)}"
            if r["steps_90"] is None and r["steps_95"] is None:
                steps = MISSING
            out.add_row(
                _solver_cell(r),
                f"{r['completed']}/{diverged}/{failed}",
                _mark(_acc_text(r["test_acc"], r["test_ci95"]), r["test_acc"], best["test_acc"]),
                _mark(_fixed(r["test_std"], 2), r["test_std"], best["test_std"]),
                _mark(_fixed(r["val_acc"], 2), r["val_acc"], best["val_acc"]),
                _mark(_fixed(r["roughness"], 2), r["roughness"], best["roughness"]),
                _mark(steps, r["steps_90"], best["steps_90"]),
                _mark(format_duration(r["wall_time_s"]), r["wall_time_s"], best["wall_time_s"]),
                _mark(_fixed(r["ms_per_step"], 1), r["ms_per_step"], best["ms_per_step"]),
                _mark(
                    format_memory(r["peak_memory_mb"]), r["peak_memory_mb"], best["peak_memory_mb"]
                ),
                reference_lines(raw, r["test_acc"], r["test_ci95"]),
            )
        out.caption = captions.get(label, "")
        out.caption_justify = "left"
        tables.append(out)
    if tables:
        tables[-1].caption = "\n".join([tables[-1].caption or "", *NOTES]).strip()
    return tables


def runs_table(table: pa.Table, title: str = "raybench", curves: pa.Table | None = None) -> Table:
    """One row per run: solver, family, test accuracy with its 95% interval, final
    validation accuracy, the run's stability measures, wall time, ms per meta-step, peak
    memory, status (with the meta-steps done unless completed); the best value of each
    measure among completed runs of a setting in bold green. Settings are sections, named on
    their first row."""
    views = [v for _, v in _views(table, curves)]
    out = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in (
        ("Setting", "left"),
        ("Solver", "left"),
        ("Family", "left"),
        ("Options", "left"),
        ("Seed", "right"),
        ("Test acc. % (95% CI)", "right"),
        ("Val. %", "right"),
        ("Rough.", "right"),
        ("Steps 90/95%", "right"),
        ("Wall", "right"),
        ("ms/step", "right"),
        ("Mem.", "right"),
        ("Status", "left"),
    ):
        wrap = name in ("Setting", "Options", "Status")
        out.add_column(name, justify=justify, no_wrap=not wrap)  # type: ignore[arg-type]
    spec = {
        "test_acc": True,
        "val_acc": True,
        "wall_time_s": False,
        "ms_per_step": False,
        "peak_memory_mb": False,
    }
    best_by_setting: dict[Any, dict] = {}
    for key in {v["setting_key"] for v in views}:
        best_by_setting[key] = _best_values([v for v in views if v["setting_key"] == key], spec)
    previous = None
    for v in views:
        if previous is not None and v["setting_key"] != previous:
            out.add_section()
        label = setting_label(v["setting_key"]) if v["setting_key"] != previous else ""
        previous = v["setting_key"]
        best = best_by_setting[v["setting_key"]]
        acc, ci = v["test_acc"], v["test_ci95"]
        test = MISSING if acc is None else f"{100 * acc:.2f} ± {100 * (ci or 0):.2f}"
        val = v["val_acc"]
        status = v["status"] or "?"
        stab_steps = MISSING if v["steps_90"] is None else f"{v['steps_90']}/{v['steps_95']}"
        total = v["meta_steps"]
        if status != "completed":
            done = f"{v['steps_done']}/{total}" if total else str(v["steps_done"])
            status = f"[red]{status}[/] at {done}"
        source = v["source"]
        solver = str(v["solver"]) + (f" ({source})" if source not in (None, "preset") else "")
        out.add_row(
            label,
            solver,
            str(v["family"] or MISSING),
            v["options"] or MISSING,
            str(v["seed"] if v["seed"] is not None else MISSING),
            _mark(test, acc, best["test_acc"]),
            _mark(MISSING if val is None else f"{100 * val:.2f}", val, best["val_acc"]),
            MISSING if v["roughness"] is None else f"{100 * v['roughness']:.2f}",
            stab_steps,
            _mark(format_duration(v["wall_time_s"]), v["wall_time_s"], best["wall_time_s"]),
            _mark(_fixed(v["ms_per_step"], 1), v["ms_per_step"], best["ms_per_step"]),
            _mark(format_memory(v["peak_memory_mb"]), v["peak_memory_mb"], best["peak_memory_mb"]),
            status,
        )
    captions = setting_captions(table)
    out.caption = "\n".join(f"{label}: {line}" for label, line in captions.items())
    out.caption_justify = "left"
    return out
