"""The runs of an experiment as configurations: what the run figures draw.

Runs of one configuration (same solver, ``config_fingerprint`` and ``source``) differ only by
seed and are drawn as their mean with the range over seeds as a band. Values that are not
finite (a diverged run's last rows) are left out, and the step where a run diverged is
marked.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from raybench.solver_catalog import family_rank

# Config keys that never tell two configurations apart in a label.
_NOT_A_SETTING = {"seed", "device", "solver", "solver_options"}


def num(value: Any) -> float:
    """A finite float, or NaN for None, NaN, infinities and anything not a number."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist() if table.num_rows else []


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _config(row: dict[str, Any]) -> dict[str, Any]:
    """A run's settings, flat: the stored config JSON (solver options as ``<knob>``), else
    whatever setting columns an older store has."""
    from raybench.config import RUN_BOUNDS

    try:
        data = json.loads(row.get("config_json") or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict) or not data:
        data = {k: row[k] for k in (*RUN_BOUNDS, "preset") if row.get(k) is not None}
    options = data.pop("solver_options", None) or {}
    flat = {k: v for k, v in data.items() if k not in _NOT_A_SETTING}
    if isinstance(options, dict):
        flat.update({str(k): v for k, v in options.items()})
    flat["source"] = row.get("source") or "preset"
    return flat


@dataclass
class RunGroup:
    """The runs of one configuration of one solver: they differ only by seed."""

    solver: str
    family: str
    key: str
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    label: str = ""
    slug: str = ""

    @property
    def seeds(self) -> list[int]:
        return sorted({int(r["seed"]) for r in self.runs if r.get("seed") is not None})

    @property
    def n_seeds(self) -> int:
        return max(len(self.seeds), 1 if self.runs else 0)

    @property
    def diverged(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") == "diverged"]

    def value(self, key: str) -> Any:
        return self.config.get(key, self.runs[0].get(key) if self.runs else None)

    def setting(self) -> str:
        """``preset paper, 5-way 1-shot`` (what is known of it)."""
        parts = []
        if self.value("preset") is not None:
            parts.append(f"preset {self.value('preset')}")
        ways, shots = self.value("ways"), self.value("shots")
        if ways is not None and shots is not None:
            parts.append(f"{ways}-way {shots}-shot")
        if self.config.get("source") not in (None, "preset"):
            parts.append(str(self.config["source"]))
        return ", ".join(parts) or "setting unknown"

    def seed_text(self) -> str:
        seeds = self.seeds
        text = f"{self.n_seeds} seed" + ("s" if self.n_seeds != 1 else "")
        if seeds:
            text += f" ({', '.join(map(str, seeds))})"
        return text


def run_groups(runs: pa.Table, curves: pa.Table | None = None) -> list[RunGroup]:
    """Completed and diverged runs grouped by configuration (failed runs are left out),
    each with its curve rows sorted by step and a label that tells it from the others."""
    groups: dict[tuple, RunGroup] = {}
    for row in rows_of(runs):
        if row.get("status") not in ("completed", "diverged") or not row.get("solver"):
            continue
        config = _config(row)
        fingerprint = row.get("config_fingerprint") or json.dumps(config, sort_keys=True)
        key = (row["solver"], fingerprint, config["source"])
        if key not in groups:
            groups[key] = RunGroup(
                solver=str(row["solver"]),
                family=str(row.get("family") or ""),
                key=str(row.get("config_fingerprint") or ""),
                config=config,
            )
        groups[key].runs.append(row)
    by_run = {r.get("run_id"): g for g in groups.values() for r in g.runs}
    for row in rows_of(curves) if curves is not None else []:
        group = by_run.get(row.get("run_id"))
        if group is not None and row.get("step") is not None:
            group.curves.setdefault(str(row["run_id"]), []).append(row)
    out = sorted(groups.values(), key=lambda g: (family_rank(g.family), g.solver, g.key))
    for group in out:
        group.runs.sort(key=lambda r: (r.get("seed") or 0, str(r.get("run_id"))))
        for rows in group.curves.values():
            rows.sort(key=lambda r: r["step"])
    _name_groups(out)
    return out


_SETTING_KEYS = ("preset", "ways", "shots", "source")


def names(groups: Sequence[RunGroup]) -> list[tuple[str, str]]:
    """(label, file-name suffix) of each group among ``groups``: the solver, plus what tells
    its configuration from the others shown with it: the preset and source where they vary,
    ways and shots where they vary within a preset, and any other setting where it varies
    between configurations of the same solver, preset and source."""

    def varies(members: Sequence[RunGroup], key: str) -> bool:
        return len({json.dumps(g.config.get(key), sort_keys=True) for g in members}) > 1

    vary_preset = varies(groups, "preset")
    vary_source = varies(groups, "source")
    names = []
    for group in groups:
        preset = [g for g in groups if g.config.get("preset") == group.config.get("preset")]
        same = [
            g
            for g in groups
            if g.solver == group.solver
            and all(g.config.get(k) == group.config.get(k) for k in _SETTING_KEYS)
        ]
        parts: list[tuple[str, str]] = []  # (label text, file-name text)
        if vary_preset:
            parts.append((str(group.config.get("preset")), str(group.config.get("preset"))))
        if varies(preset, "ways") or varies(preset, "shots"):
            ways, shots = group.config.get("ways"), group.config.get("shots")
            parts.append((f"{ways}-way {shots}-shot", f"{ways}w{shots}s"))
        if vary_source:
            parts.append((str(group.config.get("source")), str(group.config.get("source"))))
        keys = sorted(
            k
            for k in set().union(*(g.config for g in same))
            if k not in _SETTING_KEYS and varies(same, k)
        )
        shown = [
            (f"{k}={fmt(group.config.get(k))}", f"{k}{fmt(group.config.get(k))}") for k in keys
        ]
        if len(shown) > 3:  # too many to read: the first ones and the fingerprint
            shown = [*shown[:2], (f"config {group.key}", group.key)]
        parts += shown
        label = group.solver + (f" ({', '.join(p for p, _ in parts)})" if parts else "")
        slug = "-".join(slugify(s) for _, s in parts)
        if len(slug) > 40:
            slug = slugify(group.key) or slug[:40]
        names.append((label, file_stem(group.solver) + (f"-{slug}" if slug else "")))
    seen: dict[str, int] = {}
    for _, slug in names:
        seen[slug] = seen.get(slug, 0) + 1
    return [  # still the same name: add the fingerprint
        (label, f"{slug}-{slugify(g.key)}" if seen[slug] > 1 and g.key else slug)
        for (label, slug), g in zip(names, groups)
    ]


def _name_groups(groups: Sequence[RunGroup]) -> None:
    for group, (label, slug) in zip(groups, names(groups)):
        group.label, group.slug = label, slug


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")


def file_stem(text: str) -> str:
    """A file name made from stored text (a solver's name): letters, digits, ``_`` and
    ``-`` only, never a path; where that changed the text, a hash of the text keeps two
    names apart (``x/../NAME`` becomes ``x-NAME-<hash>``)."""
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")
    if stem == text:
        return stem
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{stem}-{digest}" if stem else digest


def series(
    group: RunGroup, column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps and, per step, the mean, min, max and count of the finite values over seeds
    (computed by hand: numpy's nan-functions warn on all-NaN columns)."""
    steps = sorted({int(r["step"]) for rows in group.curves.values() for r in rows})
    if not steps:
        empty = np.zeros(0)
        return empty, empty, empty, empty, empty
    index = {s: i for i, s in enumerate(steps)}
    values = np.full((max(len(group.curves), 1), len(steps)), np.nan)
    for i, rows in enumerate(group.curves.values()):
        for r in rows:
            values[i, index[int(r["step"])]] = num(r.get(column))
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    safe = np.where(finite, values, 0.0)
    mean = np.divide(safe.sum(axis=0), count, out=np.full(len(steps), np.nan), where=count > 0)
    lo = np.where(finite, values, np.inf).min(axis=0)
    hi = np.where(finite, values, -np.inf).max(axis=0)
    lo[count == 0], hi[count == 0] = np.nan, np.nan
    return np.asarray(steps, dtype=float), mean, lo, hi, count


def divergence_steps(group: RunGroup) -> list[tuple[int, Any]]:
    """(step, seed) where each diverged run of the group stopped."""
    out = []
    for run in group.diverged:
        rows = group.curves.get(str(run.get("run_id")), [])
        step = rows[-1]["step"] if rows else run.get("steps_done")
        if step is not None:
            out.append((int(step), run.get("seed")))
    return out


def summary(groups: Sequence[RunGroup]) -> str:
    """``preset paper, 5-way 1-shot, 1-3 seeds per configuration``."""

    def values(key: str) -> str:
        seen = sorted({str(v) for g in groups if (v := g.value(key)) is not None})
        return "/".join(seen) if seen else "?"

    seeds = sorted({g.n_seeds for g in groups})
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    plural = "s" if seeds[-1] != 1 else ""
    return (
        f"preset {values('preset')}, {values('ways')}-way {values('shots')}-shot, "
        f"{seed_text} seed{plural} per configuration"
    )


def group_styles(groups: Sequence[RunGroup]) -> list[dict[str, Any]]:
    """Line and marker style of each group: its solver's colour and marker (the same in
    every figure), and a line style (and for every second one hollow markers) that tells
    configurations of the same solver apart."""
    from raybench.report.plots.style import CONFIG_LINESTYLES, solver_color, solver_marker

    seen: dict[str, int] = {}
    out = []
    for group in groups:
        i = seen.get(group.solver, 0)
        seen[group.solver] = i + 1
        color = solver_color(group.solver)
        out.append(
            {
                "color": color,
                "marker": solver_marker(group.solver),
                "linestyle": CONFIG_LINESTYLES[i % len(CONFIG_LINESTYLES)],
                "markerfacecolor": color if i % 2 == 0 else "white",
            }
        )
    return out
