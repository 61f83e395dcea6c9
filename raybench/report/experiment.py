"""The report's records of a stored experiment: what ``raybench report``, ``compare`` and
``replicate`` show, computed from the store alone (the API and the CLI both call these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from raybench.report.agreement import Agreement
    from raybench.report.comparison import PairedResult
    from raybench.results import ExperimentStore


def summary_records(store: ExperimentStore, *, defaults: bool = False) -> list[dict[str, Any]]:
    """The report's table as records, computed from the store (what ``raybench report``
    shows and stores as ``summary.parquet``); for a sweep, its tuned configurations with
    the defaults' accuracy and the tuning gain beside them, or with ``defaults`` the
    default configurations."""
    from raybench.report.records import aggregate_runs as records
    from raybench.report.tuning import default_selected

    runs = store.read("runs")
    if runs.num_rows == 0:
        return []
    trials = store.read("trials") if store.files("trials") else None
    return records(
        runs,
        store.read("curves"),
        store.read("tasks"),
        defaults=defaults,
        default_selected=default_selected(trials),
    )


def protocol_lines(store: ExperimentStore) -> list[str]:
    """A sweep's tuning protocol as the report prints it (``protocol.json``); none for an
    experiment that is not a sweep of this kind."""
    from raybench.search.protocol import read_protocol

    if not (store.root / "protocol.json").is_file():
        return []
    return read_protocol(store).lines()


def replication_records(
    published: ExperimentStore, replicated: ExperimentStore
) -> list[dict[str, Any]]:
    """Every verdict of a published sweep's tables (vs best in the tuned and the defaults
    table, the tuning gains' significance) against its replication's on fresh seeds: the
    verdict on each side, whether it replicated, the probability it should have by chance
    alone, and each accuracy's shift between the seed sets with its interval
    (:mod:`raybench.report.replication`). Both stores are read with the published
    search's selection, so a solver whose default was selected is one row in both. Only
    the runs the replication planned are read from it (the published configurations on its
    seeds); a replication of another sweep is refused."""
    from raybench.report.paired import task_results
    from raybench.report.records import aggregate_runs as records
    from raybench.report.records import run_views
    from raybench.report.replication import TABLES, compare_replication
    from raybench.report.tuning import default_selected
    from raybench.search.finals import planned_runs, replicated_seeds

    seeds = replicated_seeds(published, replicated)  # refuses another sweep's replication
    trials = published.read("trials") if published.files("trials") else None
    selected = default_selected(trials)

    def tables(store: ExperimentStore, runs: pa.Table, keep: set[str] | None) -> tuple:
        runs, curves, tasks = (
            only_runs(table, keep) for table in (runs, store.read("curves"), store.read("tasks"))
        )
        summary = {
            table: records(
                runs, curves, tasks, defaults=table == "defaults", default_selected=selected
            )
            for table in TABLES
        }
        return summary, [view for _, view in run_views(runs, None)], task_results(tasks)

    published_runs, replicated_runs = published.read("runs"), replicated.read("runs")
    planned = planned_runs(published_runs, replicated_runs, seeds)
    mine, my_runs, my_tasks = tables(published, published_runs, None)
    theirs, their_runs, their_tasks = tables(replicated, replicated_runs, planned)
    return compare_replication(mine, theirs, my_runs, their_runs, my_tasks, their_tasks)


def only_runs(table: pa.Table, run_ids: set[str] | None) -> pa.Table:
    """The rows of ``table`` whose run is one of ``run_ids`` (all where None)."""
    if run_ids is None or table.num_rows == 0:
        return table
    import pyarrow as pa
    import pyarrow.compute as pc

    return table.filter(pc.is_in(table.column("run_id"), value_set=pa.array(sorted(run_ids))))


def agreement_records(published: ExperimentStore, reproduced: ExperimentStore) -> Agreement:
    """Whether ``reproduced`` (for example a user's run of the main job) agrees with
    ``published`` by the statistics (:mod:`raybench.report.agreement`): every published
    configuration's accuracy shift with its interval, both sides' verdicts against the best,
    and how many seeds agree bitwise, with the kernels each side's runs were rounded by."""
    from raybench.report.agreement import NOT_RECORDED, Agreement, compare_experiments
    from raybench.report.paired import task_results
    from raybench.report.records import aggregate_runs as records
    from raybench.report.records import run_views, setting_label
    from raybench.report.tuning import default_selected

    def side(store: ExperimentStore) -> tuple[list, list, dict, tuple[str, ...]]:
        runs, curves, tasks = store.read("runs"), store.read("curves"), store.read("tasks")
        trials = store.read("trials") if store.files("trials") else None
        summary = records(runs, curves, tasks, default_selected=default_selected(trials))
        views = [
            {**view, "setting": setting_label(view["setting_key"])}
            for _, view in run_views(runs, None)
        ]
        kernels = runs.column("kernels").to_pylist() if "kernels" in runs.column_names else []
        named = tuple(sorted({k or NOT_RECORDED for k in kernels or [None]}))
        return summary, views, task_results(tasks), named

    (mine, my_runs, my_tasks, my_kernels) = side(published)
    (theirs, their_runs, their_tasks, their_kernels) = side(reproduced)
    rows = compare_experiments(mine, theirs, my_runs, their_runs, my_tasks, their_tasks)
    return Agreement(rows, my_kernels, their_kernels)


def paired_results(store: ExperimentStore, a: str, b: str) -> list[PairedResult]:
    """A against B (solver names or configuration fingerprints) in every setting where
    both have runs."""
    from raybench.report.comparison import compare_configurations

    return compare_configurations(store.read("runs"), store.read("tasks"), a, b)
