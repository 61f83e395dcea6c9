"""The main job's results on the results page (docs/results.md) are what its store says.

The table between the page's result markers must be exactly what the command shown above it
prints from ``benchmarks/results/quick``; the figures it names must be ones that
``raybench plot`` draws from that store, under the names it gives them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq

import raybench.api
from raybench.report.plots.registry import _KINDS, PlotContext, figure_kinds
from raybench.results import ExperimentStore

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "results" / "quick"
START = "<!-- results: quick table"
END = "<!-- /results -->"


def results_page() -> str:
    """The page that shows the main job's results (the README links to it)."""
    return (ROOT / "docs" / "results.md").read_text(encoding="utf-8")


def published_table() -> str:
    text = results_page()
    start = text.index("\n", text.index(START)) + 1
    return text[start : text.index(END, start)]


def shown_command() -> list[str]:
    """The `raybench report ... --compact ...` line of the results page's results section."""
    line = next(
        line
        for line in results_page().splitlines()
        if line.startswith("raybench report -e benchmarks/results/quick") and "--compact" in line
    )
    args = line.split()[2:]  # after "raybench report"
    return args[1:] if args[0] in ("-e", "--experiment") else args


def test_the_committed_store_is_complete() -> None:
    """24 completed runs with their per-task results and pairing record, made by one
    clean commit that the results page names."""
    runs = pq.read_table(STORE / "runs").to_pylist()
    assert len(runs) == 24 and {r["status"] for r in runs} == {"completed"}
    assert {r["seed"] for r in runs} == {0, 1, 2} and {r["preset"] for r in runs} == {"quick"}
    assert pq.read_table(STORE / "tasks").num_rows == 24 * 300
    assert not (STORE / "checkpoints").exists() and not (STORE / "progress").exists()
    (commit,) = {r["git_commit"] for r in runs}
    assert not commit.endswith("-dirty") and f"`{commit[:7]}`" in results_page()
    for seed in (0, 1, 2):  # one initial network per seed, shared by all eight solvers
        assert len({r["init_fingerprint"] for r in runs if r["seed"] == seed}) == 1
    assert len({r["init_fingerprint"] for r in runs}) == 3


def test_results_page_table_is_what_the_store_says(tmp_path: Path) -> None:
    args = shown_command()
    assert args[0] == "benchmarks/results/quick"
    options = dict(zip(args[1::2], args[2::2], strict=False))
    assert options["--format"] == "markdown" and "--compact" in args
    store = tmp_path / "quick"
    shutil.copytree(STORE, store)  # the report stores summary.parquet: not in the repo
    columns = args[args.index("--columns") + 1]
    text = raybench.api.report(store, fmt="markdown", columns=columns, compact=True)
    assert text == published_table(), (
        "docs/results.md's results table drifted from benchmarks/results/quick: regenerate it with "
        "the command shown above it"
    )


def test_results_page_figure_is_drawn_by_raybench_plot() -> None:
    shown = re.findall(r"benchmarks/results/quick/plots/([\w-]+)\.png", results_page())
    assert "accuracy-vs-time" in shown
    figure_kinds()  # every figure module registered
    context = PlotContext(ExperimentStore(STORE))
    stems = {planned.stem for planned in _KINDS["runs"][1](context)}
    for stem in shown:
        assert stem in stems
        assert (STORE / "plots" / f"{stem}.png").is_file()


# Every difference the results page's findings quote, as (A, B, decimals, the quoted text): each
# is recomputed from the store, so a statement cannot drift from it either.
QUOTED = [
    ("maml", "finetune-head", 1, "+39.9 ± 2.3"),
    ("fomaml", "finetune-head", 1, "+31.9 ± 6.8"),
    ("neumann", "finetune-head", 1, "+34.1 ± 9.1"),
    ("reptile", "finetune-head", 1, "+12.4 ± 2.6"),
    ("imaml", "finetune-head", 1, "+9.8 ± 14.3"),
    ("penalty", "finetune-head", 1, "+3.2 ± 43.6"),
    ("fomaml", "maml", 1, "-8.0 ± 9.2"),
    ("neumann", "maml", 1, "-5.8 ± 9.3"),
    ("fomaml", "neumann", 1, "-2.2 ± 9.2"),
    ("finetune-full", "finetune-head", 2, "+0.01 ± 0.23"),
]
META = ("maml", "fomaml", "neumann", "reptile", "imaml", "penalty")


def findings() -> str:
    text = results_page()
    start = text.index("What is and is not significant at this scale")
    return " ".join(text[start:].split())


def test_results_page_findings_quote_the_store() -> None:
    """Each quoted difference is the seed-paired comparison on the committed store; the
    Holm-adjusted p-values, the detectable difference and the seeds needed that the
    findings quote are too."""
    import raybench
    from raybench.report.significance import PAIRED, holm

    text = findings()
    rows = {}
    for a, b, digits, quoted in QUOTED:
        row = raybench.compare(STORE, a, b, detect=5.0).iloc[0]
        assert row["method"] == PAIRED, (a, b, row["why"])
        assert f"{row['diff']:+.{digits}f} ± {row['half_width']:.{digits}f}" == quoted, (a, b)
        assert quoted in text, quoted
        rows[a, b] = row
    over_head = holm([rows[s, "finetune-head"]["p_value"] for s in META])
    assert max(over_head[:4]) < 0.05 and f"{over_head[4]:.2f}" == "0.20"  # iMAML's
    summary = raybench.summary(STORE).set_index("solver")
    for solver in ("fomaml", "neumann", "penalty"):
        assert summary.loc[solver, "vs_best_verdict"] == "tied"
        assert f"{summary.loc[solver, 'vs_best_p']:.2f}" == "0.20"
    for solver in ("reptile", "imaml", "finetune-head", "finetune-full"):
        assert summary.loc[solver, "vs_best_verdict"] == "worse"
    assert f"{summary.loc['fomaml', 'vs_best_detectable']:.1f}" == "12.1"
    assert "(12.1 for FOMAML" in text
    maml_fomaml = raybench.compare(STORE, "maml", "fomaml", detect=5.0).iloc[0]
    assert maml_fomaml["seeds_needed"] == 7 and "7 seeds on each side would detect 5" in text


AGREEMENT_START = "<!-- results: agreement table"
OTHER_KERNELS_STORE = ROOT / "benchmarks" / "results" / "quick-default-kernels"
NATIVE_STORE = ROOT / "benchmarks" / "results" / "quick-native"


def test_the_other_kernels_store_differs_only_by_its_kernels() -> None:
    """The main job again: the same settings, seeds and training code (as declared
    equivalent), other kernels on every run, none of them the native ones."""
    from raybench.code_version import trains_as

    mine, theirs = (pq.read_table(s / "runs").to_pylist() for s in (STORE, OTHER_KERNELS_STORE))
    assert len(theirs) == 24 and {r["status"] for r in theirs} == {"completed"}
    key = lambda r: (r["solver"], r["seed"], r["config_fingerprint"])  # noqa: E731
    assert sorted(map(key, mine)) == sorted(map(key, theirs))
    assert {trains_as(r["code_fingerprint"]) for r in theirs} == {"db58c425bbdd"}
    (commit,) = {r["git_commit"] for r in theirs}
    assert f"`{commit[:7]}`" in results_page()
    (kernels,) = {r["kernels"] for r in theirs}
    assert "ATen DEFAULT" in kernels and "DNNL_MAX_CPU_ISA=SSE41" in kernels
    assert not (OTHER_KERNELS_STORE / "checkpoints").exists()


def test_results_page_agreement_is_what_the_stores_say() -> None:
    """The agreement table is what ``raybench agree`` prints from the two stores, and the
    numbers quoted under it are theirs."""
    text = results_page()
    start = text.index("\n", text.index(AGREEMENT_START)) + 1
    shown = text[start : text.index(END, start)]
    found = raybench.api.agreement(STORE, OTHER_KERNELS_STORE)
    from raybench.report.agreement import agreement_markdown

    assert shown == agreement_markdown(found), (
        "docs/results.md's agreement table drifted: regenerate it with the command shown above it"
    )
    assert found.agrees and sum(r["bitwise_seeds"] for r in found.rows) == 1
    assert "One run of 24 gave the published accuracy bitwise" in " ".join(text.split())
    imaml = next(r for r in found.rows if r["solver"] == "imaml")
    assert (imaml["published"], imaml["reproduced"]) == ("worse", "tied")
    quoted = text[text.index("Three verdicts changed") :][:700]
    for store in (OTHER_KERNELS_STORE, STORE):
        records = raybench.api.summary_records(raybench.api.open_store(store))
        row = next(r for r in records if r["solver"] == "imaml")
        assert f"{row['vs_best']:.2f}" in quoted and f"±{row['vs_best_ci95']:.2f}" in quoted
        assert f"{row['vs_best_p']:.3f}" in quoted


def test_the_native_and_other_kernels_runs_differ_only_by_kernels_and_agree() -> None:
    """Today's main job natively and on other kernels: the same training code, settings and
    seeds, different kernels; they agree by the statistics and in no run bitwise, as the
    the results page says; neither repeats the older published store bitwise."""
    native, other = (
        pq.read_table(s / "runs").to_pylist() for s in (NATIVE_STORE, OTHER_KERNELS_STORE)
    )
    key = lambda r: (r["solver"], r["seed"], r["config_fingerprint"], r["code_fingerprint"])  # noqa: E731
    assert len(native) == 24 and sorted(map(key, native)) == sorted(map(key, other))
    (kernels,) = {r["kernels"] for r in native}
    assert "ATen AVX2" in kernels and kernels != other[0]["kernels"]
    (commit,) = {r["git_commit"] for r in native}
    text = " ".join(results_page().split())
    assert f"`{commit[:7]}`" in text
    pair = raybench.api.agreement(NATIVE_STORE, OTHER_KERNELS_STORE)
    assert pair.agrees and sum(r["bitwise_seeds"] for r in pair.rows) == 0
    nearest = min(pair.rows, key=lambda r: r["shift_p_holm"])
    assert nearest["solver"] == "neumann"
    quoted = f"{nearest['shift']:+.2f} ± {nearest['shift_ci95']:.2f}".replace("+", "")
    assert f"{quoted}, at a Holm-adjusted p of {nearest['shift_p_holm']:.3f}" in text
    published = raybench.api.agreement(STORE, NATIVE_STORE)
    assert published.agrees and sum(r["bitwise_seeds"] for r in published.rows) == 0
    assert "gave no run of 24 bitwise and agrees with it too" in text
