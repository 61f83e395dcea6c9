"""Whether a published experiment's verdicts replicate on fresh seeds.

A replication trains the published configurations again (every solver's default and tuned
one, as selected; no new search) on a disjoint set of seeds, tested on the same fixed
test tasks. For every verdict of the published tables (which row is best, which are
tied with it or worse, whether tuning gained significantly) this module says whether the
replication gives the same verdict, and how often it should by chance alone: the
probability of the same verdict when the published difference is the true one and the
replication has the published comparison's standard error (the power of the replication
against the published difference for a significant verdict, one minus it for a verdict
of no difference). A verdict that fails where agreement was likely is a fragile claim; one
that fails where agreement was a coin toss is chance at the stated power.

Each accuracy's shift between the two seed sets (replicated minus published) is estimated
with the seeds modelled as independent (no seed is shared) over the same test tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from scipy import stats

from raybench.report import paired
from raybench.report.power import power_at
from raybench.report.significance import ALPHA

if TYPE_CHECKING:
    from rich.table import Table

TABLES = ("tuned", "defaults")  # the report's two tables of a sweep: tuned rows, defaults

# One row per (table, solver); None where a side lacks the value.
FIELDS = (
    "table", "solver", "verdict", "published_acc", "replicated_acc", "shift", "shift_ci95",
    "shift_p", "published", "replicated", "same", "expected",
)  # fmt: skip


def significance(p: float | None) -> str | None:
    if p is None:
        return None
    return "significant" if p < ALPHA else "not significant"


def expected_same(
    verdict: str, diff: float | None, se: float | None, df: float | None
) -> float | None:
    """The probability that a replication with standard error ``se`` repeats ``verdict``
    when ``diff`` is the true difference."""
    if diff is None or se is None or df is None:
        return None
    power = power_at(diff, se, df)
    return power if verdict in ("worse", "significant") else 1.0 - power


def best_again(best: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The probability that the best row stays above every other: the product over the
    others of Phi(distance / se) (each comparison's own normal approximation, taken as
    independent)."""
    out = 1.0
    for r in rows:
        if r is best:
            continue
        if r.get("vs_best") is None or not r.get("vs_best_se"):
            return None
        out *= float(stats.norm.cdf(-r["vs_best"] / r["vs_best_se"]))
    return out


def _shift(
    published: paired.Runs | None, replicated: paired.Runs | None
) -> tuple[float | None, float | None, float | None]:
    if published is None or replicated is None or published.keys != replicated.keys:
        return None, None, None
    c = paired.compare_runs(replicated, published)  # no seed shared: independent seeds
    return c.diff, c.half_width, c.p_value


def _lined_up(runs: Sequence[Mapping[str, Any]], results: Mapping, solver: str, source: str):
    views = [
        r for r in runs
        if r["solver"] == solver and r.get("source") == source and r["status"] == "completed"
        and r.get("test_acc") is not None
    ]  # fmt: skip
    return paired.lined_up(views, results)


def compare_replication(
    published: Mapping[str, Sequence[Mapping[str, Any]]],
    replicated: Mapping[str, Sequence[Mapping[str, Any]]],
    published_runs: Sequence[Mapping[str, Any]],
    replicated_runs: Sequence[Mapping[str, Any]],
    published_results: Mapping[str, paired.TaskResults],
    replicated_results: Mapping[str, paired.TaskResults],
) -> list[dict[str, Any]]:
    """Every verdict of the published tables against the replication's.

    ``published`` and ``replicated`` map each table name of :data:`TABLES` to its summary
    records (:func:`raybench.report.records.aggregate_runs`, one setting); the runs and
    per-task results line up each configuration's seeds for the accuracy shift. Rows: the
    vs-best verdict of every solver in both tables, then the tuning gain's significance of
    every tuned solver that has one."""
    out: list[dict[str, Any]] = []
    for table in TABLES:
        mine = {str(r["solver"]): r for r in published.get(table, ())}
        theirs = {str(r["solver"]): r for r in replicated.get(table, ())}
        for solver, r in mine.items():
            other = theirs.get(solver, {})
            source = str(r.get("source") or "")
            shift = _shift(
                _lined_up(published_runs, published_results, solver, source),
                _lined_up(replicated_runs, replicated_results, solver, source),
            )
            base = {
                "table": table,
                "solver": solver,
                "published_acc": r.get("test_acc"),
                "replicated_acc": other.get("test_acc"),
                "shift": shift[0],
                "shift_ci95": shift[1],
                "shift_p": shift[2],
            }
            verdict = r.get("vs_best_verdict")
            if verdict is not None:
                if verdict == "best":
                    expected = best_again(r, list(mine.values()))
                else:
                    se, df = r.get("vs_best_se"), r.get("vs_best_df")
                    expected = expected_same(verdict, r.get("vs_best"), se, df)
                again = other.get("vs_best_verdict")
                out.append({
                    **base, "verdict": "vs best", "published": verdict, "replicated": again,
                    "same": None if again is None else again == verdict, "expected": expected,
                })  # fmt: skip
            gain = significance(r.get("tuning_gain_p"))
            if table == "tuned" and gain is not None:
                again = significance(other.get("tuning_gain_p"))
                expected = expected_same(
                    gain, r.get("tuning_gain"), r.get("tuning_gain_se"), r.get("tuning_gain_df")
                )
                out.append({
                    **base, "verdict": "tuning gain", "published": gain, "replicated": again,
                    "same": None if again is None else again == gain, "expected": expected,
                })  # fmt: skip
    return [{k: row.get(k) for k in FIELDS} for row in out]


def agreement(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int, float]:
    """How many verdicts replicated, of how many compared, and how many were expected to
    (the sum of the probabilities)."""
    compared = [r for r in rows if r["same"] is not None]
    expected = sum(r["expected"] or 0.0 for r in compared)
    return sum(bool(r["same"]) for r in compared), len(compared), expected


def agreement_line(rows: list[dict[str, Any]]) -> str:
    held, compared, expected = agreement(rows)
    return (
        f"{held} of {compared} verdicts replicated; {expected:.1f} expected by chance alone "
        "(the probability of the same verdict when the published difference is the true one, "
        "at the published standard error and the unadjusted 5%). Shift: replicated minus "
        "published accuracy, seeds independent, same test tasks."
    )


def replication_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table for a README, the agreement line under it."""
    out = [
        "| table | solver | verdict | published | replicated | same | P(same) | published % "
        "| replicated % | shift (95% CI) |",
        "| --- | --- | --- | --- | --- | :---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        same = "—" if r["same"] is None else ("yes" if r["same"] else "**no**")
        shift = "—" if r["shift"] is None else f"{r['shift']:+.2f} ± {r['shift_ci95']:.2f}"
        cells = [
            r["table"], r["solver"], r["verdict"], str(r["published"]),
            str(r["replicated"] or "—"), same, percent_text(r["expected"]),
            percent_text(r["published_acc"]), percent_text(r["replicated_acc"]), shift,
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join([*out, "", f"- {agreement_line(rows)}"]) + "\n"


def percent_text(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def replication_table(rows: list[dict[str, Any]]) -> Table:
    """The comparison as a Rich table, the count of verdicts that held under it."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Replication on fresh seeds", caption=agreement_line(rows))
    for name, justify in (
        ("Table", "left"), ("Solver", "left"), ("Verdict", "left"), ("Published", "left"),
        ("Replicated", "left"), ("Same", "center"), ("P(same)", "right"),
        ("Published %", "right"), ("Replicated %", "right"), ("Shift ± 95% CI", "right"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        same = "—" if r["same"] is None else ("yes" if r["same"] else "[red]no[/]")
        shift = "—" if r["shift"] is None else f"{r['shift']:+.2f} ± {r['shift_ci95']:.2f}"
        table.add_row(
            escape(r["table"]), escape(str(r["solver"])), escape(r["verdict"]),
            escape(str(r["published"])), escape(str(r["replicated"] or "—")), same,
            percent_text(r["expected"]),
            percent_text(r["published_acc"]), percent_text(r["replicated_acc"]), shift,
        )  # fmt: skip
    return table
