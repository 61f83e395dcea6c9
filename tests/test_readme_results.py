"""The README's published results are what the committed store says.

The table between the README's result markers must be exactly what the command shown
above it prints from ``benchmarks/results/quick``; the figure it shows must be one that
``raybench plot`` draws from that store, under the name it gives it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console

from raybench.cli.reports import report
from raybench.report.plots.registry import _KINDS, PlotContext, figure_kinds
from raybench.results import ExperimentStore

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "results" / "quick"
START = "<!-- results: quick table"
END = "<!-- /results -->"


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def published_table() -> str:
    text = readme()
    start = text.index("\n", text.index(START)) + 1
    return text[start : text.index(END)]


def shown_command() -> list[str]:
    """The `raybench report ... --compact ...` line of the README's results section."""
    line = next(line for line in readme().splitlines() if "--compact" in line)
    args = line.split()[2:]  # after "raybench report"
    return args[1:] if args[0] in ("-e", "--experiment") else args


def test_the_committed_store_is_complete() -> None:
    runs = pq.read_table(STORE / "runs").to_pylist()
    assert len(runs) == 24 and {r["status"] for r in runs} == {"completed"}
    assert {r["seed"] for r in runs} == {0, 1, 2} and {r["preset"] for r in runs} == {"quick"}
    assert pq.read_table(STORE / "tasks").num_rows == 24 * 300
    assert not (STORE / "checkpoints").exists() and not (STORE / "progress").exists()


def test_readme_table_is_what_the_store_says(tmp_path: Path) -> None:
    args = shown_command()
    assert args[0] == "benchmarks/results/quick"
    options = dict(zip(args[1::2], args[2::2], strict=False))
    assert options["--format"] == "markdown" and "--compact" in args
    store = tmp_path / "quick"
    shutil.copytree(STORE, store)  # the report stores summary.parquet: not in the repo
    out = tmp_path / "table.md"
    columns = args[args.index("--columns") + 1]
    report(str(store), tmp_path, Console(), fmt="markdown", output=out, columns=columns,
           compact=True)  # fmt: skip
    assert out.read_text(encoding="utf-8") == published_table(), (
        "README's results table drifted from benchmarks/results/quick: regenerate it with "
        "the command shown above it"
    )


def test_readme_figure_is_drawn_by_raybench_plot() -> None:
    shown = re.findall(r"benchmarks/results/quick/plots/([\w-]+)\.png", readme())
    assert "accuracy-vs-time" in shown
    figure_kinds()  # every figure module registered
    context = PlotContext(ExperimentStore(STORE))
    stems = {planned.stem for planned in _KINDS["runs"][1](context)}
    for stem in shown:
        assert stem in stems
        assert (STORE / "plots" / f"{stem}.png").is_file()
