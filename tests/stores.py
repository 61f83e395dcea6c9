"""Fabricated stores for the report, compare and API tests: runs written through the real
store with known per-task results (no training), and study tables in their schemas."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raybench.metrics import TASK_METRICS
from raybench.results import ExperimentStore
from raybench.results.schema import SCHEMA_VERSION
from raybench.results.store import write_table
from raybench.results.trials import trials_table
from raybench.search.protocol import make_protocol
from raybench.search.spaces import load_space
from raybench.solvers import METRICS, make_config
from raybench.train import RunResult

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
FAMILIES = {
    "maml": "second-order",
    "fomaml": "first-order",
    "reptile": "first-order",
    "imaml": "implicit",
    "penalty": "penalty",
    "finetune-full": "baseline",
    "finetune-head": "baseline",
}
N_TASKS = 200


def curve(values: list[float], every: int = 100) -> list[dict[str, float]]:
    return [
        {"step": every * (i + 1), "train_time_s": 1.0, "ms_per_step": 10.0, "grad_norm": 1.0}
        | {f"{w}_{m}": 50.0 for w in ("train", "val") for m in METRICS}
        | {"val_query_acc_post": v}
        for i, v in enumerate(values)
    ]


def run_result(
    solver: str,
    seed: int,
    accs: np.ndarray | None,
    *,
    preset: str = "paper",
    overrides: dict[str, Any] | None = None,
    **fields: Any,
) -> RunResult:
    """A tested run with the given per-task accuracies (%); ``accs=None``: not tested."""
    config = make_config(solver, preset, {"seed": seed, **(overrides or {})})
    values: dict[str, Any] = dict(
        config=config,
        family=FAMILIES[solver],
        steps_done=config.meta_steps,
        curves=curve([40.0, 55.0, 60.0, 62.0]),
        final_val_acc=62.0,
        wall_time_s=100.0 + seed,
        ms_per_step=40.0 + seed,
        peak_memory_mb=900.0 + seed,
        memory_kind="cpu_peak_rss",
        device="cpu: test",
        git_commit="test",
        started_at=NOW,
        ended_at=NOW,
    )
    if accs is not None:
        tasks = {m: [50.0] * len(accs) for m in TASK_METRICS}
        tasks["query_acc_post"] = [float(a) for a in accs]
        values.update(
            test_acc_mean=float(np.mean(accs)),
            test_acc_ci95=float(1.96 * np.std(accs, ddof=1) / math.sqrt(len(accs))),
            test_tasks_n=len(accs),
            tasks=tasks,
            task_keys=[f"task{i}" for i in range(len(accs))],
        )
    values.update(fields)
    return RunResult(**values)


def comparison_store(
    root: Path, seed: int = 0, recorded: bool = True
) -> tuple[ExperimentStore, dict[str, np.ndarray]]:
    """One setting (5-way 1-shot, paper): maml (preset, and a tuned configuration with
    another inner lr), fomaml, finetune-full, 3 seeds each on the same 200 tasks, seed s
    of each with a shared effect (common random numbers) and, if ``recorded``, the
    pairing record of a current store (the baseline's training draws its own); a failed
    reptile run. Returns the store and each configuration's seeds x tasks matrix (keys:
    maml, maml-tuned, fomaml, finetune-full)."""
    rng = np.random.default_rng(seed)
    task_effect = rng.normal(0, 8, N_TASKS)
    seed_effect = rng.normal(0, 2.0, 3)
    store = ExperimentStore(root)
    matrices: dict[str, np.ndarray] = {}
    plan = (
        ("maml", "maml", 80.0, {}),
        ("maml-tuned", "maml", 81.0, {"inner_lr": 0.05}),
        ("fomaml", "fomaml", 79.5, {}),
        ("finetune-full", "finetune-full", 45.0, {}),
    )
    for key, solver, mean, overrides in plan:
        rows = []
        for s in range(3):
            x = mean + seed_effect[s] + rng.normal(0, 0.7) + task_effect
            x = np.clip(x + rng.normal(0, 5, N_TASKS), 0, 100)
            rows.append(x)
            source = "tuned" if key.endswith("tuned") else "preset"
            draws = "images" if solver.startswith("finetune") else "tasks"
            record = {"init_fingerprint": f"init-{s}", "stream_fingerprint": f"{draws}-{s}"}
            result = run_result(solver, s, x, overrides=overrides, **(record if recorded else {}))
            store.write_run(result, source=source)
        matrices[key] = np.stack(rows)
    failed = run_result(
        "reptile",
        0,
        None,
        family="",
        status="failed",
        steps_done=0,
        curves=[],
        final_val_acc=None,
        error="RuntimeError: CUDA error: out of memory [device 0] while {allocating}",
    )
    store.write_run(failed)
    return store, matrices


def write_scaling(store: ExperimentStore) -> pa.Table:
    """A scaling study: maml grows with the inner steps, fomaml stays flat."""
    from raybench.measurements.scaling import SCALING_SCHEMA

    rows = []
    for solver, family in (("maml", "second-order"), ("fomaml", "first-order")):
        for k in (1, 2, 5):
            rows.append(
                {
                    "schema_version": 1,
                    "study_id": "scaling-test",
                    "experiment": store.name,
                    "solver": solver,
                    "family": family,
                    "inner_steps": k,
                    "inner_steps_matter": True,
                    "ms_per_step": 10.0 * k if solver == "maml" else 8.0,
                    "ms_min": 9.0,
                    "peak_memory_mb": 100.0 * k if solver == "maml" else 90.0,
                    "memory_kind": "cpu_peak_rss_delta",
                    "isolated": True,
                    "timed_steps": 2,
                    "warmup_steps": 1,
                    "threads": 1,
                    "device": "cpu",
                    "meta_batch": 2,
                    "ways": 5,
                    "shots": 1,
                    "query": 15,
                    "hidden": 16,
                    "inner_lr": 0.01,
                    "dtype": "float32",
                    "preset": "smoke",
                    "n_params": 1000,
                    "config_fingerprint": "abc",
                    "config_json": "{}",
                    "torch_version": "test",
                    "git_commit": "test",
                    "created_at": NOW,
                }
            )
    table = pa.Table.from_pylist(rows, schema=SCALING_SCHEMA)
    write_table(store.path("scaling", "scaling-test"), table)
    return table


def write_bench(store: ExperimentStore) -> pa.Table:
    """One ``raybench bench`` invocation: two solvers and the MAML loop."""
    from raybench.measurements.bench import BENCH_SCHEMA

    rows = []
    for solver, family, impl, ms in (
        ("maml", "second-order", "vmap", 40.0),
        ("fomaml", "first-order", "vmap", 20.0),
        ("maml", "second-order", "reference loop", 400.0),
    ):
        rows.append(
            {
                "schema_version": 1,
                "bench_id": f"{solver}-{impl[:3]}",
                "experiment": store.name,
                "solver": solver,
                "family": family,
                "implementation": impl,
                "reference": "maml loop" if impl == "vmap" else None,
                "ms_per_step": ms,
                "ms_min": ms - 1,
                "speedup_vs_loop": 400.0 / ms if impl == "vmap" else None,
                "implied_run_s": ms * 2,
                "meta_steps": 2000,
                "peak_memory_mb": 500.0,
                "memory_kind": "cpu_peak_rss",
                "device": "cpu",
                "threads": 1,
                "torch_version": "test",
                "preset": "paper",
                "ways": 5,
                "shots": 1,
                "query": 15,
                "meta_batch": 16,
                "inner_steps": 5,
                "hidden": 64,
                "dtype": "float32",
                "config_json": "{}",
                "error": None,
                "git_commit": "test",
                "created_at": NOW,
            }
        )
    table = pa.Table.from_pylist(rows, schema=BENCH_SCHEMA)
    write_table(store.root / "bench" / "paper-test.parquet", table)
    return table


SWEEP_MEANS = {"maml-default": 80.0, "maml-tuned": 83.0, "fomaml-default": 79.0,
               "penalty-default": 70.0}  # fmt: skip
TUNED = {"inner_lr": 0.05}


def sweep_store(
    root: Path, seeds: range = range(3), means: dict[str, float] | None = None, draw: int = 3
) -> tuple[ExperimentStore, dict[str, np.ndarray]]:
    """A sweep's store, fabricated: maml: default (80%) and tuned (83%); fomaml: its
    default selected; penalty: no trial completed (``means`` changes any of them). Seeds
    share their effect across configurations (common random numbers) and record the same
    initial networks; the test tasks' effects are the same in every store (``draw`` seeds
    the rest)."""
    task_effect = np.random.default_rng(3).normal(0, 8, N_TASKS)
    rng = np.random.default_rng(draw)
    seed_effect = dict(zip(seeds, rng.normal(0, 2.0, len(seeds))))
    store = ExperimentStore(root)
    matrices = {}
    means = {**SWEEP_MEANS, **(means or {})}
    for key, mean in means.items():
        solver, source = key.split("-")
        overrides = TUNED if source == "tuned" else {}
        rows = []
        for s in seeds:
            x = np.clip(mean + seed_effect[s] + task_effect + rng.normal(0, 5, N_TASKS), 0, 100)
            rows.append(x)
            record = {"init_fingerprint": f"init-{s}", "stream_fingerprint": f"tasks-{s}"}
            result = run_result(solver, s, x, overrides=overrides, **record)
            store.write_run(result, source=source)
        matrices[key] = np.stack(rows)
    trials = [
        {"solver": "maml", "trial_id": "m0", "status": "completed", "val_acc": 60.0,
         "default": True, "selected": False},
        {"solver": "maml", "trial_id": "m1", "status": "completed", "val_acc": 65.0,
         "default": False, "selected": True},
        {"solver": "fomaml", "trial_id": "f0", "status": "completed", "val_acc": 66.0,
         "default": True, "selected": True},
        {"solver": "fomaml", "trial_id": "f1", "status": "stopped", "val_acc": 70.0,
         "default": False, "selected": False},
        {"solver": "penalty", "trial_id": "p0", "status": "errored", "val_acc": None,
         "default": True, "selected": False},
    ]  # fmt: skip
    for solver in ("maml", "fomaml", "penalty"):
        mine = [
            dict(t, experiment=root.name, schema_version=SCHEMA_VERSION)
            for t in trials
            if t["solver"] == solver
        ]
        write_table(root / "trials" / f"{solver}.parquet", trials_table(mine))
    solvers = ["maml", "fomaml", "penalty"]
    protocol = make_protocol(
        solvers=solvers, preset="paper", overrides={}, spaces=[load_space(s) for s in solvers],
        trials=2, steps=500, seeds=list(seeds), final_steps=None,
    )  # fmt: skip
    store.write_manifest("protocol", protocol.to_json())
    return store, matrices
