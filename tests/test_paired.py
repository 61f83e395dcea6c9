"""Per-task test results in the store, and the report's comparison with the best row."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from raybench.data import OmniglotImages
from raybench.metrics import TASK_METRICS
from raybench.report import paired
from raybench.report.records import aggregate_runs
from raybench.report.significance import compare, holm
from raybench.results import ExperimentStore
from raybench.results.schema import TASKS_SCHEMA
from raybench.solvers import make_config
from raybench.train import RunResult, train

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.slow
def test_task_index_means_the_same_task_for_every_solver_and_seed(
    omniglot: OmniglotImages, tmp_path: Path
) -> None:
    store = ExperimentStore(tmp_path / "exp")
    for solver in ("maml", "fomaml"):
        for seed in (0, 1):
            config = make_config(solver, "smoke", {"seed": seed, "meta_steps": 2})
            store.write_run(train(config, omniglot))
    tasks = store.read("tasks")
    assert tasks.schema.equals(TASKS_SCHEMA)
    runs = {r["run_id"]: r for r in store.read("runs").to_pylist()}
    assert set(tasks.column("run_id").to_pylist()) == set(runs)
    keys = {}
    for run_id, run in runs.items():
        rows = sorted(
            (r for r in tasks.to_pylist() if r["run_id"] == run_id), key=lambda r: r["task"]
        )
        assert [r["task"] for r in rows] == list(range(run["test_tasks_n"])) == list(range(8))
        keys[run_id] = [r["task_key"] for r in rows]
        # the per-task results are the run's test result, task by task (in %)
        mean = np.mean([r["query_acc_post"] for r in rows])
        assert mean == pytest.approx(run["test_acc_mean"])
        assert all(0 <= r["query_acc_post"] <= 100 for r in rows)
        assert all(r["query_loss_pre"] > 0 for r in rows)
    assert len({tuple(k) for k in keys.values()}) == 1  # the same 8 tasks everywhere
    assert len(set(next(iter(keys.values())))) == 8  # and 8 different tasks
    # another split draws other tasks: the key tells them apart
    other = make_config("maml", "smoke", {"split": "lake", "meta_steps": 2})
    store.write_run(train(other, omniglot))
    other_rows = pq.read_table(store.path("tasks", other.run_id)).to_pylist()
    assert [r["task_key"] for r in other_rows] != next(iter(keys.values()))


def fake(solver: str, seed: int, accs: np.ndarray, keys: list[str] | None = None) -> RunResult:
    """A tested run with given per-task accuracies (no training)."""
    config = make_config(solver, "smoke", {"seed": seed})
    tasks = {m: [50.0] * len(accs) for m in TASK_METRICS}
    tasks["query_acc_post"] = [float(a) for a in accs]
    return RunResult(
        config=config,
        family="second-order",
        steps_done=4,
        curves=[],
        final_val_acc=50.0,
        test_acc_mean=float(np.mean(accs)),
        test_acc_ci95=1.0,
        test_tasks_n=len(accs),
        started_at=NOW,
        ended_at=NOW,
        tasks=tasks,
        task_keys=keys or [f"k{i}" for i in range(len(accs))],
    )


def test_report_compares_every_row_with_the_best(tmp_path: Path) -> None:
    """maml best; fomaml a hair below (tied); reptile far below (worse); penalty on other
    tasks (not comparable); finetune-head from an older store without per-task results."""
    rng = np.random.default_rng(0)
    tasks = rng.normal(0, 8, 200)
    store = ExperimentStore(tmp_path / "exp")
    accs = {}
    for solver, mean in (("maml", 60.0), ("fomaml", 59.8), ("reptile", 50.0), ("penalty", 55)):
        for seed in range(3):  # means low enough that every task accuracy is within 0-100
            x = mean + rng.normal(0, 0.5) + tasks + rng.normal(0, 5, 200)
            assert x.min() >= 0 and x.max() <= 100
            accs.setdefault(solver, []).append(x)
            keys = [f"other{i}" for i in range(200)] if solver == "penalty" else None
            store.write_run(fake(solver, seed, x, keys))
    head = fake("finetune-head", 0, np.full(200, 30.0))
    head.tasks = head.task_keys = None  # as an older raybench stored it
    store.write_run(head)
    assert not store.path("tasks", head.config.run_id).exists()
    records = {
        r["solver"]: r for r in aggregate_runs(store.read("runs"), None, store.read("tasks"))
    }
    assert records["maml"]["vs_best_verdict"] == "best" and records["maml"]["vs_best"] == 0.0
    fomaml, reptile = records["fomaml"], records["reptile"]
    # the numbers are the paired comparison with the best, Holm-adjusted over the two
    raw = [compare(np.stack(accs[s]), np.stack(accs["maml"])) for s in ("fomaml", "reptile")]
    adjusted = holm([c.p_value for c in raw])
    assert fomaml["vs_best"] == pytest.approx(raw[0].diff)
    assert fomaml["vs_best"] == pytest.approx(fomaml["test_acc"] - records["maml"]["test_acc"])
    assert fomaml["vs_best_ci95"] == pytest.approx(raw[0].half_width)
    assert (fomaml["vs_best_p"], reptile["vs_best_p"]) == pytest.approx(adjusted)
    assert fomaml["vs_best_verdict"] == "tied" and reptile["vs_best_verdict"] == "worse"
    for solver in ("penalty", "finetune-head"):  # nothing to pair with: left empty
        assert records[solver]["vs_best"] is None and records[solver]["vs_best_verdict"] is None


def test_pairs_need_the_same_tasks_in_the_same_order() -> None:
    results = {
        "a": paired.TaskResults(("x", "y"), np.array([1.0, 2.0])),
        "b": paired.TaskResults(("x", "y"), np.array([2.0, 3.0])),
        "c": paired.TaskResults(("y", "x"), np.array([2.0, 1.0])),
    }

    def views(*run_ids: str) -> list[dict]:  # seeds in the reverse order of the ids
        return [{"run_id": r, "seed": 9 - i} for i, r in enumerate(run_ids)]

    runs = paired.lined_up(views("a", "b"), results)
    assert runs is not None and runs.keys == ("x", "y")
    assert runs.matrix.tolist() == [[2.0, 3.0], [1.0, 2.0]] and runs.seeds == (8, 9)
    assert paired.lined_up(views("a", "c"), results) is None
    assert paired.lined_up(views("a", "missing"), results) is None


def test_the_best_is_compared_seed_by_seed_where_the_seeds_are_shared(tmp_path: Path) -> None:
    """A current store: every vs-best comparison is seed-paired (Holm over the paired
    p-values), named so in the records and the table's footnote; the same store without
    its pairing record falls back to independent seeds and says why; one seed that started
    from another network breaks the pairing of its configuration only."""
    from stores import comparison_store

    from raybench.report.flat import summary_markdown_compact

    store, matrices = comparison_store(tmp_path / "new")
    records = aggregate_runs(store.read("runs"), None, store.read("tasks"))
    by_key = {(r["solver"], r["source"]): r for r in records if r["vs_best_verdict"]}
    best = next(k for k, r in by_key.items() if r["vs_best_verdict"] == "best")
    assert best == ("maml", "tuned")
    names = {("maml", "preset"): "maml", ("fomaml", "preset"): "fomaml",
             ("finetune-full", "preset"): "finetune-full"}  # fmt: skip
    raw = {k: compare(matrices[n], matrices["maml-tuned"], paired=True) for k, n in names.items()}
    adjusted = dict(zip(raw, holm([c.p_value for c in raw.values()])))
    for key, c in raw.items():
        record = by_key[key]
        assert record["vs_best_method"] == "seed-paired"
        assert record["vs_best"] == pytest.approx(c.diff)
        assert record["vs_best_ci95"] == pytest.approx(c.half_width)
        assert record["vs_best_p"] == pytest.approx(adjusted[key])
        assert record["vs_best_detectable"] > record["vs_best_ci95"] > 0
    assert (
        "shared: same initial networks, training draws"
        in by_key[("fomaml", "preset")]["vs_best_why"]
    )
    table = " ".join(summary_markdown_compact(records, None, []).split())
    assert "seed-paired (per-seed differences" in table and "for every row" in table

    old, _ = comparison_store(tmp_path / "old", recorded=False)
    records = aggregate_runs(old.read("runs"), None, old.read("tasks"))
    for r in records:
        if r["vs_best_verdict"] not in (None, "best"):
            assert r["vs_best_method"] == "independent seeds"
            assert "no pairing record" in r["vs_best_why"]
    table = " ".join(summary_markdown_compact(records, None, []).split())
    assert "seeds modelled as independent" in table

    mixed, _ = comparison_store(tmp_path / "mixed")
    (run,) = [
        r for r in mixed.read("runs").to_pylist() if r["solver"] == "fomaml" and r["seed"] == 1
    ]
    runs = mixed.read("runs")
    column = runs.column("init_fingerprint").to_pylist()
    column[runs.column("run_id").to_pylist().index(run["run_id"])] = "another network"
    changed = runs.set_column(
        runs.schema.get_field_index("init_fingerprint"), "init_fingerprint", [column]
    )
    records = {
        r["solver"]: r
        for r in aggregate_runs(changed, None, mixed.read("tasks"))
        if r["source"] == "preset"
    }
    assert records["fomaml"]["vs_best_method"] == "independent seeds"
    assert records["fomaml"]["vs_best_why"] == "seed 1 started from different networks"
    assert records["finetune-full"]["vs_best_method"] == "seed-paired"
    table = " ".join(summary_markdown_compact(list(records.values()), None, []).split())
    assert "independent (not the same seeds, or no record of what they share) for fomaml" in table
