"""Reading stored experiments from Python: their tables as DataFrames, the report's text
and figures, the paired comparison and the replication's verdicts. Nothing here trains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from raybench.execution import RunSummary
    from raybench.report.agreement import Agreement
    from raybench.report.comparison import PairedResult
    from raybench.results import ExperimentStore

from raybench.api.parameters import checked
from raybench.report.experiment import (
    agreement_records,
    paired_results,
    replication_records,
    summary_records,
)

PathLike = str | Path


def optional_path(path: PathLike | None) -> Path | None:
    """A path the API was given as text or a Path, or None when none was."""
    return None if path is None else Path(path)


def open_store(experiment: PathLike | None = None, out: PathLike = "outputs") -> ExperimentStore:
    """An experiment by name under ``out``, by folder path, or (None) the newest under
    ``out``; a one-line error naming what there is otherwise."""
    from raybench.planning import newest_experiment
    from raybench.results import open_experiment

    out = Path(out)
    name = str(experiment) if experiment is not None else newest_experiment(out)
    return open_experiment(name, out)


def _frame(table: pa.Table, schema: pa.Schema | None = None) -> pd.DataFrame:
    """A table as a DataFrame; an empty one keeps the table's columns when known."""
    if table.num_rows == 0 and schema is not None:
        table = schema.empty_table()
    return table.to_pandas()


class Experiment:
    """An experiment's stored tables as pandas DataFrames, each read on first use.

    ``runs`` (one row per run), ``curves`` (one per evaluation point), ``tasks`` (each
    tested run's result on every fixed test task), ``summary`` (the report's table: one
    row per setting, solver and configuration), ``trials`` (a sweep's), and the studies
    ``bench``, ``scaling``, ``fidelity``; empty where the experiment has none. After
    :func:`run`, ``ran`` lists that call's runs and how each ended."""

    def __init__(self, store: ExperimentStore, outcomes: Sequence[RunSummary] = ()) -> None:
        self.store = store
        self.outcomes = list(outcomes)

    def __repr__(self) -> str:
        return f"Experiment({self.name!r}, root={str(self.root)!r})"

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def root(self) -> Path:
        return self.store.root

    @cached_property
    def runs(self) -> pd.DataFrame:
        from raybench.results.schema import RUNS_SCHEMA

        return _frame(self.store.read("runs"), RUNS_SCHEMA)

    @cached_property
    def curves(self) -> pd.DataFrame:
        from raybench.results.schema import CURVES_SCHEMA

        return _frame(self.store.read("curves"), CURVES_SCHEMA)

    @cached_property
    def tasks(self) -> pd.DataFrame:
        from raybench.results.schema import TASKS_SCHEMA

        return _frame(self.store.read("tasks"), TASKS_SCHEMA)

    @cached_property
    def summary(self) -> pd.DataFrame:
        from raybench.report.records import summary_arrow

        return summary_arrow(summary_records(self.store)).to_pandas()

    @cached_property
    def trials(self) -> pd.DataFrame:
        return _frame(self.store.read("trials"))

    @cached_property
    def bench(self) -> pd.DataFrame:
        return self._study("bench")

    @cached_property
    def scaling(self) -> pd.DataFrame:
        return self._study("scaling")

    @cached_property
    def fidelity(self) -> pd.DataFrame:
        return self._study("fidelity")

    @property
    def ran(self) -> pd.DataFrame:
        """The runs of the :func:`run` call that returned this: run_id, status (completed,
        diverged, failed, or skipped: already stored) and error."""
        import pandas as pd

        rows = [{"run_id": s.run_id, "status": s.status, "error": s.error} for s in self.outcomes]
        return pd.DataFrame(rows, columns=["run_id", "status", "error"])

    def compare(self, a: str, b: str, detect: float | None = None) -> pd.DataFrame:
        """:func:`compare` on this experiment."""
        return _comparison_frame(paired_results(self.store, a, b), detect)

    def _study(self, name: str) -> pd.DataFrame:
        import pandas as pd

        from raybench.report.measurement_records import STUDY_RECORDS

        rows, names = STUDY_RECORDS[name](self.store)
        return pd.DataFrame(rows, columns=names)


@checked(None)
def load(experiment: PathLike | None = None, out: PathLike = "outputs") -> Experiment:
    """A stored experiment: by name under ``out``, by folder, or the newest (None). Its
    tables are DataFrames: ``load("paper").runs``, ``.curves``, ``.tasks``, ``.summary``,
    ``.trials``, ``.bench``, ``.scaling``, ``.fidelity``."""
    return Experiment(open_store(experiment, out))


@checked(None)
def replication(
    published: PathLike, replicated: PathLike | None = None, out: PathLike = "outputs"
) -> pd.DataFrame:
    """:func:`replication_records` as a DataFrame: ``published`` a sweep (name under
    ``out`` or folder), ``replicated`` its replication (default ``<published>-replication``
    beside it).

        raybench.replication("benchmarks/results/published")
    """
    import pandas as pd

    from raybench.report.replication import FIELDS

    store = open_store(published, out)
    beside = store.root.parent / f"{store.root.name}-replication"
    other = open_store(beside if replicated is None else replicated, out)
    return pd.DataFrame(replication_records(store, other), columns=list(FIELDS))


@checked("agree")
def agreement(
    published: PathLike, experiment: PathLike | None = None, out: PathLike = "outputs"
) -> Agreement:
    """Whether ``experiment`` (a name under ``out`` or a folder; the newest there by
    default), for example your run of the main job, agrees with ``published`` by the
    statistics rather than seed for seed (:mod:`raybench.report.agreement`): ``.agrees``,
    ``.problems``, ``.rows`` (per configuration: the accuracy shift with its interval and
    Holm-adjusted p, both verdicts against the best, bitwise-equal seeds), ``.frame()``.

        raybench.agreement("benchmarks/results/quick", "outputs/my-main-job").agrees
    """
    from raybench.errors import ParameterError

    mine, theirs = open_store(published, out), open_store(experiment, out)
    if mine.root.resolve() == theirs.root.resolve():
        raise ParameterError(
            "{experiment}: {path} is the published experiment itself", path=theirs.root
        )
    found = agreement_records(mine, theirs)
    if not found.rows:
        raise ParameterError("{published}: {path} has no runs to agree with", path=mine.root)
    if not any(r["reproduced_acc"] is not None for r in found.rows):
        raise ParameterError(
            "{experiment}: {path} ran none of the published configurations ({published})",
            path=theirs.root, published=mine.root,
        )  # fmt: skip
    return found


@checked(None)
def summary(experiment: PathLike | None = None, out: PathLike = "outputs") -> pd.DataFrame:
    """The report's table as a DataFrame: one row per setting, solver and configuration,
    with test accuracy and its interval, the paired comparison with the best row
    (``vs_best*``), stability, cost and published references (see docs/reading-results.md)."""
    return load(experiment, out).summary


def _comparison_frame(results: Sequence[PairedResult], detect: float | None = None) -> pd.DataFrame:
    import pandas as pd

    from raybench.report.comparison import RECORD_COLUMNS, comparison_record

    records = [comparison_record(r, detect) for r in results]
    return pd.DataFrame(records, columns=list(RECORD_COLUMNS))


@checked("compare")
def compare(
    experiment: PathLike | None,
    a: str,
    b: str,
    out: PathLike = "outputs",
    detect: float | None = None,
) -> pd.DataFrame:
    """A against B (solver names, or configuration fingerprints where a solver has
    several configurations) in every setting where both have runs: one row per setting
    with the per-seed mean accuracies, the difference A - B, its 95% interval, the
    (unadjusted) p-value, the method (``paired``: seed-paired or independent seeds) and
    ``why``, tasks, seeds, variance terms, ``detectable_80`` (the difference detected with
    80% power at 5%) and, given ``detect`` (points), ``seeds_needed`` on each side."""
    return _comparison_frame(paired_results(open_store(experiment, out), a, b), detect)


@dataclass(frozen=True)
class Figures:
    """What :func:`plot` drew: the experiment's name, the folder, the files written, why
    each other figure was skipped (no data of its kind), and each figure's size
    (``1200x600 px``, or ``SVG, 12x6 in``)."""

    experiment: str
    directory: Path
    written: list[Path]
    skipped: list[str]
    size: str = ""


@checked("report", width=(20, 10_000))
def report(
    experiment: PathLike | None = None,
    out: PathLike = "outputs",
    *,
    fmt: str = "markdown",
    runs: bool = False,
    columns: str | Sequence[str] | None = None,
    table: str | None = None,
    compact: bool = False,
    defaults: bool = False,
    width: int | None = None,
) -> str:
    """The text ``raybench report`` prints: the report's table of ``experiment`` (name
    under ``out``, folder, or the newest), its per-run rows (``runs``) and its stored
    studies, computed from the store (which gains ``summary.parquet`` as with the CLI).

    Args:
        experiment: an experiment's name under ``out`` or its folder; None: the newest.
        out: the folder of experiments.
        fmt: ``markdown``, ``csv``, ``json``, ``latex`` or ``rich`` (the terminal's tables,
            drawn ``width`` characters wide, without colour).
        runs: the per-run rows instead of the aggregated table.
        columns: the columns (names or groups, as ``raybench report --columns``).
        table: one table only (``summary``, ``runs``, ``trials``, ``bench``, ...).
        compact: Markdown with one column per group, as the terminal shows them.
        defaults: a sweep's default configurations instead of its tuned ones.
        width: the width of ``rich`` tables (default ``$COLUMNS``, else 160).

    Returns:
        The report as text, exactly what the CLI writes for the same options.

    Raises:
        RaybenchError: an unknown format, table or column, or no such experiment.

    Example::

        print(raybench.api.report("benchmarks/results/published", compact=True))
    """
    from raybench.errors import ParameterError
    from raybench.report.render import report_text

    if columns is not None and not isinstance(columns, str):
        columns = ",".join(columns)
    if columns is not None and not columns.strip(", "):
        raise ParameterError("{columns} {given!r}: expected at least one column", given=columns)
    return report_text(
        open_store(experiment, out),
        fmt,
        show_runs=runs,
        columns=columns,
        table=table,
        compact=compact,
        defaults=defaults,
        width=width,
    )


@checked("plot")
def plot(
    experiment: PathLike | None = None,
    out: PathLike = "outputs",
    *,
    directory: PathLike | None = None,
    fmt: str = "png",
    dpi: int = 100,
) -> Figures:
    """Draw every figure the experiment has data for, as ``raybench plot`` does.

    Args:
        experiment: an experiment's name under ``out`` or its folder; None: the newest.
        out: the folder of experiments.
        directory: where the figures go (default ``<experiment>/plots``).
        fmt: ``png``, ``pdf`` or ``svg``.
        dpi: resolution; a figure is 12 x 6 inches.

    Returns:
        :class:`Figures`: the folder, the files written, the kinds skipped and why.

    Raises:
        RaybenchError: a bad format or resolution, no such experiment, nothing to plot.

    Example::

        figures = raybench.plot("benchmarks/results/published", directory="figs", fmt="svg")
        figures.written   # [PosixPath('figs/accuracy-vs-time.svg'), ...]
    """
    from raybench.errors import RaybenchError
    from raybench.report.plots import Output, plot_experiment

    output = Output(fmt, dpi)  # checked before anything is read
    store = open_store(experiment, out)
    target = Path(directory) if directory is not None else store.root / "plots"
    skipped: list[str] = []
    written = plot_experiment(store, target, on_skip=skipped.append, output=output)
    if not written:
        raise RaybenchError(
            f"nothing to plot in {store.root}: " + "; ".join(skipped or ["no data"])
        )
    width, height = output.pixels
    size = f"{width}x{height} px" if fmt == "png" else f"{fmt.upper()}, 12x6 in"
    return Figures(store.name, target, list(written), skipped, size)
