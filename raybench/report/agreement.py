"""Whether an experiment agrees with a published one by the statistics, not seed for seed.

The same code, configuration and seed give bitwise the same numbers only on the same
kernels (:func:`raybench.runtime.kernel_set`, each run's ``kernels``). Other kernels round
float32 differently in the last bit; a run amplifies that, and at the quick scale a seed's
test accuracy moves by several points. What reproduces there is the distribution over
seeds, and that is what this module checks, for every configuration (setting, solver,
configuration fingerprint) of the published experiment:

- the **shift** of its mean accuracy (reproduced minus published) over the same fixed test
  tasks, seed-paired where both ran the same seeds with the same training draws (valid
  whatever the kernels: each seed's difference is independent of the other seeds'), else
  as independent seeds; Holm-adjusted over the configurations, with the shift it would
  detect with 80% power;
- the **verdict** against the best row of its setting on each side (best, tied, worse) and
  the probability that the published verdict repeats when the published difference is the
  true one (:mod:`raybench.report.replication`);
- how many seeds gave **bitwise** the same accuracy (all of them are expected on the same
  kernels and code, few or none elsewhere).

The two agree when every published configuration has tested runs on both sides and no
shift is significant after Holm's adjustment: two experiments drawn from one distribution
then disagree 5% of the time at most. Verdicts are shown beside it, with how many were
expected to repeat; one that was near-certain to repeat (P(same) at least :data:`SURE`)
and changed is named, not counted against agreement: each is a rare event, and counting
several of them would make false alarms common.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raybench.report import paired
from raybench.report.power import detectable
from raybench.report.replication import agreement as verdicts_held
from raybench.report.replication import best_again, expected_same, percent_text
from raybench.report.significance import ALPHA, compare, holm

if TYPE_CHECKING:
    from rich.table import Table

SURE = 0.99  # a verdict this likely to repeat that changed is named
NOT_RECORDED = "not recorded (runs stored before raybench recorded their kernels)"

FIELDS = (
    "setting", "solver", "config", "published_acc", "reproduced_acc", "shift", "shift_ci95",
    "shift_p", "shift_p_holm", "shift_detectable", "shift_method", "published", "reproduced",
    "same", "expected", "seeds", "bitwise_seeds",
)  # fmt: skip


@dataclass(frozen=True)
class Agreement:
    """Every published configuration against its reproduction (``rows``, :data:`FIELDS`),
    and the kernels each side's runs were rounded by."""

    rows: list[dict[str, Any]]
    published_kernels: tuple[str, ...]
    reproduced_kernels: tuple[str, ...]

    @property
    def problems(self) -> list[str]:
        """Why the two disagree (none where they agree): a published configuration without
        tested runs on one side, or an accuracy shift significant after Holm's adjustment
        (so that two experiments from one distribution disagree 5% of the time at most)."""
        out = []
        for r in self.rows:
            name = f"{r['solver']} ({r['config']})"
            if r["shift"] is None:
                out.append(f"{name}: no tested runs to compare on one side")
            elif r["shift_p_holm"] is not None and r["shift_p_holm"] < ALPHA:
                out.append(
                    f"{name}: accuracy shifted {r['shift']:+.2f} ± {r['shift_ci95']:.2f} "
                    f"(Holm-adjusted p {r['shift_p_holm']:.3g})"
                )
        return out

    @property
    def surprises(self) -> list[str]:
        """Verdicts at least :data:`SURE` likely to repeat that changed: shown beside the
        verdict (each is a rare event, and several rare events make a false alarm common)."""
        return [
            f"{r['solver']} {r['published']} -> {r['reproduced']} (P(same) {r['expected']:.2f})"
            for r in self.rows
            if r["same"] is False and (r["expected"] or 0.0) >= SURE
        ]

    @property
    def agrees(self) -> bool:
        return bool(self.rows) and not self.problems

    def frame(self) -> Any:
        """The rows as a pandas DataFrame (:data:`FIELDS`)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(FIELDS))

    def record(self) -> dict[str, Any]:
        """Everything as plain JSON-able data: the verdict, its reasons, kernels, rows."""
        return {
            "agrees": self.agrees,
            "problems": self.problems,
            "published_kernels": list(self.published_kernels),
            "reproduced_kernels": list(self.reproduced_kernels),
            "rows": self.rows,
        }

    @property
    def same_kernels(self) -> bool:
        """Whether every run on both sides was rounded by one and the same kernel set."""
        kernels = {*self.published_kernels, *self.reproduced_kernels}
        return len(kernels) == 1 and NOT_RECORDED not in kernels


def _key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(record.get("setting")), str(record["solver"]), str(record.get("config")))


def _tested(views: Sequence[Mapping[str, Any]], key: tuple) -> list[Mapping[str, Any]]:
    """The configuration ``key``'s completed, tested runs."""
    return [
        v for v in views
        if _key(v) == key and v["status"] == "completed" and v.get("test_acc") is not None
    ]  # fmt: skip


def _lined_up(
    views: Sequence[Mapping[str, Any]], results: Mapping[str, paired.TaskResults], key: tuple
) -> paired.Runs | None:
    chosen = _tested(views, key)
    return paired.lined_up(chosen, results) if chosen else None


def _shift(reproduced: paired.Runs, published: paired.Runs) -> tuple[Any, str]:
    """Reproduced minus published: seed-paired where the seeds and their training draws
    are the same (the starts may differ in the last bit: other kernels), else as
    independent seeds."""
    same_draws = (
        reproduced.seeds == published.seeds
        and len(reproduced.seeds) >= 2
        and None not in reproduced.seeds
        and None not in reproduced.stream
        and reproduced.stream == published.stream
    )
    if same_draws:
        return compare(
            reproduced.matrix,
            published.matrix,
            paired=True,
            why="same seeds, training draws and test tasks",
        ), "seed-paired"
    return paired.compare_runs(reproduced, published), "independent seeds"


def compare_experiments(
    published: Sequence[Mapping[str, Any]],
    reproduced: Sequence[Mapping[str, Any]],
    published_runs: Sequence[Mapping[str, Any]],
    reproduced_runs: Sequence[Mapping[str, Any]],
    published_results: Mapping[str, paired.TaskResults],
    reproduced_results: Mapping[str, paired.TaskResults],
) -> list[dict[str, Any]]:
    """One row per published configuration (``published``: summary records; the runs are
    run views with their ``setting``): its shift, both verdicts and its bitwise seeds."""
    theirs = {_key(r): r for r in reproduced}
    rows = []
    for record in published:
        key = _key(record)
        other = theirs.get(key, {})
        mine = _lined_up(published_runs, published_results, key)
        again = _lined_up(reproduced_runs, reproduced_results, key) if other else None
        row: dict[str, Any] = {
            "setting": key[0], "solver": key[1], "config": key[2],
            "published_acc": record.get("test_acc"), "reproduced_acc": other.get("test_acc"),
            "published": record.get("vs_best_verdict"), "reproduced": other.get("vs_best_verdict"),
        }  # fmt: skip
        if mine is not None and again is not None and mine.keys == again.keys:
            comparison, method = _shift(again, mine)
            row.update(
                shift=comparison.diff,
                shift_ci95=comparison.half_width,
                shift_p=comparison.p_value,
                shift_detectable=detectable(comparison),
                shift_method=method,
            )
        verdict = row["published"]
        if verdict == "best":
            rivals = [r for r in published if r.get("setting") == record.get("setting")]
            row["expected"] = best_again(record, rivals)
        elif verdict is not None:
            se, df = record.get("vs_best_se"), record.get("vs_best_df")
            row["expected"] = expected_same(verdict, record.get("vs_best"), se, df)
        if verdict is not None and row["reproduced"] is not None:
            row["same"] = row["reproduced"] == verdict
        row["seeds"], row["bitwise_seeds"] = _bitwise_seeds(published_runs, reproduced_runs, key)
        rows.append(row)
    tested = [i for i, r in enumerate(rows) if r.get("shift_p") is not None]
    for i, p in zip(tested, holm([rows[i]["shift_p"] for i in tested])):
        rows[i]["shift_p_holm"] = p
    return [{k: row.get(k) for k in FIELDS} for row in rows]


def _bitwise_seeds(
    published: Sequence[Mapping[str, Any]], reproduced: Sequence[Mapping[str, Any]], key: tuple
) -> tuple[int, int]:
    """(seeds tested on both sides, of them those with bitwise the same test accuracy)."""

    mine, theirs = ({v["seed"]: v["test_acc"] for v in _tested(views, key)}
                    for views in (published, reproduced))  # fmt: skip
    shared = set(mine) & set(theirs)
    return len(shared), sum(mine[s] == theirs[s] for s in shared)


def kernel_lines(agreement: Agreement) -> list[str]:
    def side(kernels: tuple[str, ...]) -> str:
        return "; or ".join(kernels) if kernels else NOT_RECORDED

    if agreement.same_kernels:
        note = "the same kernels: same code and seeds should agree bitwise, seed for seed"
    else:
        note = "other or unrecorded kernels: seeds are expected to differ, the statistics to agree"
    return [
        f"published kernels: {side(agreement.published_kernels)}",
        f"reproduced kernels: {side(agreement.reproduced_kernels)}",
        note,
    ]


def verdict_line(agreement: Agreement) -> str:
    held, compared, expected = verdicts_held(agreement.rows)
    verdicts = f"{held} of {compared} verdicts repeated ({expected:.1f} expected by chance alone)"
    if agreement.surprises:
        verdicts += "; changed where near-certain: " + ", ".join(agreement.surprises)
    if agreement.agrees:
        return f"agrees: no accuracy shifted (Holm-adjusted, 5%); {verdicts}"
    return "disagrees: " + "; ".join(agreement.problems or ["nothing to compare"])


def _cells(r: Mapping[str, Any], no: str) -> list[str]:
    same = "—" if r["same"] is None else ("yes" if r["same"] else no)
    shift = "—" if r["shift"] is None else f"{r['shift']:+.2f} ± {r['shift_ci95']:.2f}"
    holm_p = "—" if r["shift_p_holm"] is None else f"{r['shift_p_holm']:.3g}"
    pct = percent_text
    return [
        r["solver"], pct(r["published_acc"]), pct(r["reproduced_acc"]), shift, holm_p,
        pct(r["shift_detectable"]), str(r["published"] or "—"), str(r["reproduced"] or "—"),
        same, pct(r["expected"]), f"{r['bitwise_seeds']}/{r['seeds']}",
    ]  # fmt: skip


HEADERS = (
    ("solver", "left"), ("published %", "right"), ("reproduced %", "right"),
    ("shift ± 95% CI", "right"), ("Holm p", "right"), ("detects (80%)", "right"),
    ("published", "left"), ("reproduced", "left"), ("same", "center"),
    ("P(same)", "right"), ("bitwise seeds", "right"),
)  # fmt: skip
MARKDOWN_ALIGN = {"left": "---", "right": "---:", "center": ":---:"}


def agreement_markdown(agreement: Agreement) -> str:
    """The comparison as a Markdown table, the verdict and the kernels under it."""
    out = [
        "| " + " | ".join(h for h, _ in HEADERS) + " |",
        "| " + " | ".join(MARKDOWN_ALIGN[j] for _, j in HEADERS) + " |",
    ]
    out += ["| " + " | ".join(_cells(r, "**no**")) + " |" for r in agreement.rows]
    notes = [verdict_line(agreement), *kernel_lines(agreement)]
    return "\n".join([*out, "", *(f"- {n}" for n in notes)]) + "\n"


def agreement_table(agreement: Agreement) -> Table:
    """The comparison as a Rich table, the verdict and the kernels under it."""
    from rich.markup import escape
    from rich.table import Table

    lines = (verdict_line(agreement), *kernel_lines(agreement))
    caption = "\n".join(escape(line) for line in lines)
    table = Table(title="Agreement with the published experiment", caption=caption)
    for name, justify in HEADERS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in agreement.rows:
        table.add_row(*(escape(c) for c in _cells(r, "no")))
    return table
