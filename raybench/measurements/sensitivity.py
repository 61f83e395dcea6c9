"""Sensitivity of one solver to one setting: the report's Reptile study (section 4.1.1,
outer learning rate 0.001 / 0.01 / 0.1), for any solver and any setting.

The runs are ordinary runs (one per value and seed, trained like ``raybench run``); this
module only resolves the setting's name, builds their configs and summarises the stored
runs per value: final accuracy, divergence, and the mean validation curve.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from raybench.config import RUN_BOUNDS, RunConfig, did_you_mean
from raybench.errors import ParameterError


def setting_key(solver: str, param: str) -> str:
    """``outer_lr`` -> ``outer_lr``; ``lam`` -> ``imaml.lam`` for imaml; ``imaml.lam`` as is."""
    from raybench.solvers.base import option_bounds

    options = option_bounds().get(solver, {})
    prefix, dot, knob = param.partition(".")
    if dot:
        if prefix != solver or knob not in options:
            raise ParameterError(
                "{param} {given!r}: not an option of {solver!r}", given=param, solver=solver
            )
        return param
    if param in RUN_BOUNDS:
        return param
    if param in options:
        return f"{solver}.{param}"
    known = [*RUN_BOUNDS, *options]
    raise ParameterError(
        "{param} {given!r}: unknown setting{guess}",
        given=param,
        guess=did_you_mean(param, known),
    )


def study_configs(
    solver: str,
    preset: str,
    overrides: dict[str, Any],
    key: str,
    values: Sequence[str],
    seeds: Sequence[int],
) -> list[RunConfig]:
    """One config per (value, seed), each validated; duplicates are an error."""
    from raybench.solvers import make_config

    if not values:
        raise ParameterError("{values} is empty: give a comma-separated list")
    configs = [
        make_config(solver, preset, {**overrides, key: value, "seed": seed})
        for value in values
        for seed in seeds
    ]
    if len({c.run_id for c in configs}) != len(configs):
        raise ParameterError(
            "{values} {given}: two values give the same setting", given=",".join(values)
        )
    return configs


def value_of(config_json: str, key: str) -> Any:
    data = json.loads(config_json)
    _, dot, knob = key.partition(".")
    return data["solver_options"].get(knob) if dot else data.get(key)


def sensitivity_table(
    runs: pa.Table, curves: pa.Table, key: str, configs: Sequence[RunConfig]
) -> pa.Table:
    """Per value of ``key``: runs and their outcomes, test and validation accuracy over the
    seeds, and the mean validation accuracy at each evaluation step."""
    wanted = {c.run_id for c in configs}
    rows = [r for r in runs.to_pylist() if r["run_id"] in wanted]
    points: dict[str, list[tuple[int, float]]] = {}
    for c in curves.to_pylist():
        if c["run_id"] in wanted and c.get("val_query_acc_post") is not None:
            points.setdefault(c["run_id"], []).append((c["step"], c["val_query_acc_post"]))
    order = list(dict.fromkeys(_setting_value(c, key) for c in configs))
    out = []
    for value in order:
        group = [r for r in rows if value_of(r["config_json"], key) == value]
        tests = [r["test_acc_mean"] for r in group if _finite(r.get("test_acc_mean"))]
        vals = [r["final_val_acc"] for r in group if _finite(r.get("final_val_acc"))]
        by_step: dict[int, list[float]] = {}
        for r in group:
            for step, acc in points.get(r["run_id"], []):
                if _finite(acc):
                    by_step.setdefault(step, []).append(acc)
        curve = [[s, statistics.fmean(v)] for s, v in sorted(by_step.items())]
        statuses = [r["status"] for r in group]
        out.append(
            {
                "setting": key,
                "value": str(value),
                "runs": len(group),
                "completed": statuses.count("completed"),
                "diverged": statuses.count("diverged"),
                "failed": statuses.count("failed"),
                "test_acc_mean": statistics.fmean(tests) if tests else None,
                "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else None,
                "final_val_acc": statistics.fmean(vals) if vals else None,
                "val_curve_json": json.dumps(curve),
            }
        )
    return pa.Table.from_pylist(out)


def _setting_value(config: RunConfig, key: str) -> Any:
    _, dot, knob = key.partition(".")
    return config.solver_options.get(knob) if dot else getattr(config, key)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
