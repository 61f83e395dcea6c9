"""What a report says about the runs it shows but cannot fully use: runs that lost their
curves or per-task file, and runs made by other training code than the installed one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raybench.results import ExperimentStore


def warn_missing(store: ExperimentStore, runs: object) -> None:
    """Say which finished runs lost their curves or per-task file: the report's stability
    measures (curves) and paired comparison (tasks) of their row leave them out."""
    for table, what in (
        ("curves", "its stability measures (roughness, steps to 90%/95%)"),
        ("tasks", "the paired comparison"),
    ):
        for run_id in store.runs_without(table, runs):  # type: ignore[arg-type]
            store.warn(
                f"run {run_id} has no {table} file ({store.path(table, run_id)}): "
                f"{what} of its row leave this run out"
            )


def warn_code_version(store: ExperimentStore, runs: Any) -> None:
    """Say when the runs shown were made by other training code than the installed one
    (or by several versions): one line, with how many runs each (raybench.code_version)."""
    from raybench.code_version import code_fingerprint, version_warning

    recorded = (
        runs.column("code_fingerprint").to_pylist()
        if "code_fingerprint" in runs.column_names
        else [None] * runs.num_rows
    )
    line = version_warning(recorded, code_fingerprint())
    if line:
        store.warn(line)
