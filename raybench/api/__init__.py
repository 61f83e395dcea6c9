"""raybench from Python (a notebook, a script): the same code paths as the CLI.

    import raybench

    exp = raybench.run(["maml", "fomaml"], preset="smoke", seeds=2, backend="inline")
    exp.summary[["solver", "test_acc", "test_ci95", "vs_best", "vs_best_verdict"]]
    exp.curves.groupby(["solver", "step"]).val_query_acc_post.mean()

    exp = raybench.load("paper")                  # a stored experiment, by name or folder
    raybench.compare("paper", "maml", "fomaml")   # the paired comparison, per setting

Every table is a pandas DataFrame read from the experiment's Parquet store when first
used. Each command of the CLI parses its flags, calls one function here and prints what
it returns: reading (:mod:`raybench.api.reading`: load, summary, compare, report, plot,
replication, agreement), training (:mod:`raybench.api.training`: run, sensitivity), measuring
(:mod:`raybench.api.measuring`: bench, bench_ab, fidelity, scaling), tuning
(:mod:`raybench.api.tuning`: sweep, replicate). An error is a
:class:`~raybench.errors.RaybenchError` naming the parameter as spelled here. Every argument
is checked before anything runs (:mod:`raybench.api.parameters`): a value of another kind
than annotated, or a number beyond the range its flag declares on the command line, is a
:class:`~raybench.errors.ParameterError` naming the keyword.
"""

from __future__ import annotations

from raybench.api.measuring import Measurement, bench, bench_ab, fidelity, scaling
from raybench.api.reading import (
    Experiment,
    Figures,
    agreement,
    compare,
    load,
    open_store,  # noqa: F401 - the CLI opens stores through it
    plot,
    replication,
    report,
    summary,
)
from raybench.api.training import Sensitivity, run, sensitivity
from raybench.api.tuning import Replicated, Tuned, replicate, sweep
from raybench.report.experiment import (
    agreement_records,
    paired_results,
    protocol_lines,
    replication_records,
    summary_records,
)

__all__ = [
    "Experiment", "Figures", "Measurement", "Replicated", "Sensitivity", "Tuned", "agreement",
    "agreement_records", "bench",
    "bench_ab", "compare", "fidelity", "load", "paired_results", "plot", "protocol_lines",
    "replicate", "replication", "replication_records", "report", "run", "scaling",
    "sensitivity", "summary", "summary_records", "sweep",
]  # fmt: skip
