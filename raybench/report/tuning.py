"""Default against tuned: what a sweep's protocol gained over each solver's defaults.

A sweep trains each solver's default configuration (runs of source ``default``) and its
selected one (``tuned``) with the same seeds. The report then shows one row per solver:
the tuned configuration (or the default, where the search selected it), with the
default's test accuracy and interval beside it and the tuning gain, tuned minus default,
seed-paired where both ran the same seeds from the same networks (:mod:`raybench.report.
paired` checks it), with its 95% interval and p-value. The comparison with the best row
(``vs_best``) is made among the tuned rows; ``defaults=True`` shows the defaults' table
instead, compared among themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from raybench.report import paired
from raybench.report.views import MISSING, completed_views

TUNING_FIELDS = [
    ("tuned_values", pa.string()),  # what tuning changed, or why the default stands alone
    ("default_acc", pa.float64()),  # %, the default configuration's test accuracy
    ("default_ci95", pa.float64()),
    ("tuning_gain", pa.float64()),  # accuracy points, tuned minus default
    ("tuning_gain_ci95", pa.float64()),
    ("tuning_gain_p", pa.float64()),
    ("tuning_gain_method", pa.string()),  # seed-paired / independent seeds / tasks only
    ("tuning_gain_se", pa.float64()),  # its standard error and degrees of freedom
    ("tuning_gain_df", pa.float64()),
]
TUNING_NAMES = tuple(name for name, _ in TUNING_FIELDS)
DEFAULT_SELECTED = "the default (selected by the search)"
NO_TUNED = "no tuned configuration (no trial completed)"

TUNING_NOTE = (
    "Default: the solver's default configuration's test accuracy (same seeds); tuning gain: "
    "tuned minus default in accuracy points with its 95% interval (* where p < 0.05), "
    "seed-paired where both ran the same seeds from the same networks; where the search "
    "selected the default, there is one configuration and no gain to estimate."
)


def has_tuning(records: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``records`` carry a sweep's default against tuned columns."""
    return any(r.get("tuned_values") is not None or r.get("default_acc") is not None
               for r in records)  # fmt: skip


def _by_solver(records: Sequence[Mapping[str, Any]]) -> dict[tuple, dict[str, int]]:
    """(setting, solver) -> {source: record index} for the default and tuned rows."""
    out: dict[tuple, dict[str, int]] = {}
    for i, r in enumerate(records):
        if r.get("source") in ("default", "tuned"):
            out.setdefault((r["setting"], r["solver"]), {})[str(r["source"])] = i
    return out


def add_tuning(
    records: list[dict[str, Any]],
    groups: Sequence[Sequence[tuple[dict, dict]]],
    results: Mapping[str, paired.TaskResults],
    default_selected: Mapping[str, bool],
) -> None:
    """Fill the tuning columns of every default and tuned row (both carry the same gain).
    ``default_selected``: per solver, whether its search selected the default."""
    for (_, solver), where in _by_solver(records).items():
        d, t = where.get("default"), where.get("tuned")
        if d is None:
            continue
        values: dict[str, Any] = {
            "default_acc": records[d]["test_acc"],
            "default_ci95": records[d]["test_ci95"],
        }
        if t is None:
            values["tuned_values"] = (
                DEFAULT_SELECTED if default_selected.get(str(solver)) else NO_TUNED
            )
        else:
            values["tuned_values"] = records[t]["differs"]
            a = paired.lined_up(completed_views(groups[t]), results)
            b = paired.lined_up(completed_views(groups[d]), results)
            if a is not None and b is not None and a.keys == b.keys:
                gain = paired.compare_runs(a, b)
                values.update(
                    tuning_gain=gain.diff,
                    tuning_gain_ci95=gain.half_width,
                    tuning_gain_p=gain.p_value,
                    tuning_gain_method=paired.method_label(gain),
                    tuning_gain_se=gain.se,
                    tuning_gain_df=gain.df,
                )
        for i in (d, t):
            if i is not None:
                records[i].update(values)


def shown(records: Sequence[Mapping[str, Any]], defaults: bool) -> list[int]:
    """The rows of the report's table: the tuned rows (a solver's default where it has no
    tuned row), or with ``defaults`` the default rows; rows of other sources stay."""
    pairs = _by_solver(records)
    hidden = set()
    for where in pairs.values():
        if defaults and "tuned" in where:
            hidden.add(where["tuned"])
        elif not defaults and "tuned" in where and "default" in where:
            hidden.add(where["default"])
    return [i for i in range(len(records)) if i not in hidden]


def gain_text(record: Mapping[str, Any]) -> str:
    """``+12.30 ± 4.10`` (``*`` where p < 0.05), or why there is no gain."""
    from raybench.report.significance import ALPHA

    if record.get("tuned_values") in (DEFAULT_SELECTED, NO_TUNED):
        return "default selected" if record["tuned_values"] == DEFAULT_SELECTED else "no tuned"
    if record.get("tuning_gain") is None:
        return MISSING
    text = f"{record['tuning_gain']:+.2f} ± {record['tuning_gain_ci95']:.2f}"
    p = record.get("tuning_gain_p")
    return text + (" *" if p is not None and p < ALPHA else "")


def default_selected(trials: pa.Table | None) -> dict[str, bool]:
    """Per solver, whether its search selected the default (the trials table's marks)."""
    if trials is None or not {"solver", "default", "selected"} <= set(trials.column_names):
        return {}
    out: dict[str, bool] = {}
    for row in trials.select(["solver", "default", "selected"]).to_pylist():
        if row["selected"]:
            out[str(row["solver"])] = bool(row["default"])
    return out
