"""The report at any terminal width, the errors of failed runs, --columns, LaTeX, and every
stored study in every format. Stores are fabricated (no training)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import run_main
from rich.console import Console
from stores import comparison_store, write_bench, write_scaling

from raybench.cli.reports import report
from raybench.errors import RaybenchError
from raybench.report.columns import SUMMARY_GROUPS, parse_columns
from raybench.report.flat import summary_latex
from raybench.report.records import SUMMARY_SCHEMA, aggregate_runs, caption_lines
from raybench.report.summary_columns import flat_names
from raybench.report.tables import runs_table, summary_tables
from raybench.report.text import latex_escape
from raybench.results import ExperimentStore

RAYBENCH = Path(sys.executable).parent / "raybench"
ERROR = "RuntimeError: CUDA error: out of memory [device 0] while {allocating}"


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    return comparison_store(tmp_path / "exp")[0]


def records(store: ExperimentStore) -> list[dict]:
    return aggregate_runs(store.read("runs"), store.read("curves"), store.read("tasks"))


def render(renderables, width: int) -> str:
    console = Console(record=True, width=width, color_system=None)
    for r in renderables:
        console.print(r)
    return console.export_text()


def flat_text(text: str) -> str:
    """The rendered text with the table borders and line breaks gone: what wraps."""
    return " ".join(re.sub(r"[│┃┏┓┗┛━─┡┩└┘┌┐╇╈┼┬┴├┤╍═]", " ", text).split())


# ---------------------------------------------------------------- widths


@pytest.mark.parametrize("width", [80, 120, 200])
def test_every_solver_and_interval_in_full_at_any_width(store: ExperimentStore, width: int):
    rows = records(store)
    tables = summary_tables(rows, store.read("runs"), title="exp", width=width)
    text = render(tables, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    table_lines = [line for line in lines if line.startswith(("│", "┃"))]
    for r in rows:
        name = r["solver"] + (" (tuned)" if r["source"] == "tuned" else "")
        assert any(f"│ {name} " in line for line in table_lines), (name, text)
        if r["test_acc"] is not None:  # the accuracy and its interval, on one line
            assert f"{r['test_acc']:.2f} ± {r['test_ci95']:.2f}" in text
    assert "5-way 1-shot, paper" in text
    # the difference to the best row sits beside the accuracy at every width tried
    first = text.split("(continued)")[0]
    assert "Δ best" in first and "best ★" in first
    tied_or_worse = [r for r in rows if r["vs_best_verdict"] in ("tied", "worse")]
    assert tied_or_worse and all(
        f"{r['vs_best']:+.2f} ± {r['vs_best_ci95']:.2f}" in first for r in tied_or_worse
    )
    # every default column is somewhere: in the first table, or continued under it
    for header in ("Runs", "ms/step", "Mem.", "Val. %", "Std", "Wall", "Rough.", "Reference %"):
        assert header in text, header
    continued = "(continued)" in text
    assert continued == (width < 200)


def test_columns_choose_and_order(store: ExperimentStore) -> None:
    rows = records(store)
    chosen = parse_columns("mem,ms")
    assert chosen == ["peak_memory_mb", "ms_per_step"]
    text = render(summary_tables(rows, store.read("runs"), columns=chosen, width=80), 80)
    header = next(line for line in text.splitlines() if "Solver" in line)
    assert header.index("Solver") < header.index("± 95% CI") < header.index("Mem.")
    assert header.index("Mem.") < header.index("ms/step") and "Test acc. %" in text
    headers = "\n".join(line for line in text.splitlines() if line.startswith("┃"))
    assert "Val. %" not in headers and "Δ best" not in headers and "(continued)" not in text
    # a record column stands for its column group; unknown names are an error
    assert parse_columns(["vs_best_p", "std"]) == ["vs_best_p", "test_std"]
    with pytest.raises(RaybenchError, match="unknown column 'speed'"):
        parse_columns("speed")
    # the flat formats: setting, solver, accuracy always, then the chosen columns
    names = flat_names(parse_columns("ms,vs_best_p"), SUMMARY_SCHEMA.names)
    assert names == [
        *SUMMARY_GROUPS["setting"], "solver", "family", "options", "source", "config",
        "differs", "assumptions", "test_acc", "test_ci95", "ci_over", "ms_per_step",
        "vs_best_p",
    ]  # fmt: skip
    # a column written with another: the detectable difference with the comparison
    vs_best = flat_names(["vs_best"], SUMMARY_SCHEMA.names)[len(names) - 2 :]
    assert vs_best == [
        "vs_best", "vs_best_ci95", "vs_best_p", "vs_best_verdict", "vs_best_method",
        "vs_best_why", "vs_best_detectable", "vs_best_se", "vs_best_df",
    ]  # fmt: skip


# ---------------------------------------------------------------- failed runs


def test_failed_runs_show_their_error(store: ExperimentStore) -> None:
    rows = records(store)
    reptile = next(r for r in rows if r["solver"] == "reptile")
    assert reptile["failed"] == 1 and reptile["family"] == "first-order"  # from the registry
    assert reptile["errors"] == f"failed, seed 0 at step 0/2000: {ERROR}"
    for width in (80, 200):
        text = render(summary_tables(rows, store.read("runs"), width=width), width)
        assert ERROR in flat_text(text)  # markup-like brackets shown as they are
        assert "✗ 1 failed" in text
    per_run = render([runs_table(store.read("runs"), width=120, columns=["status"])], 120)
    assert f"failed at 0/2000: {ERROR}" in flat_text(per_run)
    # and in the flat formats
    report(str(store.root), store.root.parent, Console(), fmt="json", output=store.root / "a.json")
    data = json.loads((store.root / "a.json").read_text())
    assert next(r for r in data if r["solver"] == "reptile")["errors"] == reptile["errors"]


# ---------------------------------------------------------------- LaTeX

LATEX_SPECIALS = "&%$#_{}~^\\"


def unescaped(text: str) -> list[str]:
    """Special characters LaTeX would not typeset literally, outside math and commands."""
    bare = re.sub(r"\\[A-Za-z]+(\{\})?|\\[&%$#_{}]", "", text)  # commands and escapes
    bare = re.sub(r"\$[^$]*\$", "", bare)  # math
    bare = re.sub(r"\{|\}", "", bare)  # groups of commands
    return [c for c in bare if c in "&%$#_~^\\"]


def test_latex_escape_every_special_character() -> None:
    text = "a_b & 50% $5 #1 {x} ~y ^z \\w <|> ± Δ ★ — ≠"
    escaped = latex_escape(text)
    assert unescaped(escaped) == []
    assert r"a\_b \& 50\% \$5 \#1 \{x\}" in escaped
    assert r"\textasciitilde{}y \textasciicircum{}z \textbackslash{}w" in escaped
    assert r"$\pm$" in escaped and r"$\Delta$" in escaped and r"$\star$" in escaped
    assert latex_escape("plain") == "plain"


def latex_rows(text: str) -> list[str]:
    body = text.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    return [
        line for line in body.splitlines() if line.endswith("\\\\") and "multicolumn" not in line
    ]


def test_latex_table_is_booktabs_with_chosen_columns(store: ExperimentStore, tmp_path: Path):
    rows = records(store)
    captions = caption_lines(store.read("runs"))
    text = summary_latex(rows, None, captions, label="tab:exp")
    lines = text.splitlines()
    assert lines[-1] == "\\end{table}" and "\\begin{table}[htbp]" in lines
    begin = next(line for line in lines if line.startswith("\\begin{tabular}"))
    spec = begin[len("\\begin{tabular}{") : -1]
    assert spec == "lrrrr"  # solver, accuracy, delta best, ms/step, memory
    for command in ("\\toprule", "\\midrule", "\\bottomrule", "\\label{tab:exp}"):
        assert command in text
    header = lines[lines.index("\\toprule") + 1]
    assert header.count("&") == 4 and "$\\Delta$ best" in header and "ms/step" in header
    body = latex_rows(text)
    assert len(body) == len(rows)
    for line in body:  # every row has every column, nothing left unescaped outside math
        cells = re.split(r"(?<!\\)&", line.removesuffix("\\\\"))
        assert len(cells) == 5, line
        assert all(unescaped(cell) == [] for cell in cells), line
    best = next(r for r in rows if r["vs_best_verdict"] == "best")
    assert f"$\\mathbf{{{best['test_acc']:.2f} \\pm {best['test_ci95']:.2f}}}^{{\\star}}$" in text
    tuned = next(line for line in body if line.startswith("maml (tuned"))
    assert "inner\\_lr=0.05" in tuned  # what differs, escaped
    for r in rows:
        if r["vs_best_verdict"] == "worse":
            assert f"${r['test_acc']:.2f} \\pm {r['test_ci95']:.2f}$ &" in text
        if r["vs_best_verdict"] == "tied":
            assert f"{r['test_acc']:.2f} \\pm {r['test_ci95']:.2f}^{{\\star}}$" in text
    assert all(line.startswith("% ") for line in lines[: len(captions)])
    # chosen columns, in the given order
    chosen = summary_latex(rows, parse_columns("runs,wall"), [], label="t")
    assert "{lrrr}" in chosen and "Runs & Wall (s)" in chosen
    compile_if_possible(text, tmp_path)


def compile_if_possible(table: str, tmp_path: Path) -> None:
    engine = shutil.which("pdflatex")
    if engine is None:
        return  # checked structurally above
    doc = tmp_path / "t.tex"
    doc.write_text(
        "\\documentclass{article}\\usepackage[utf8]{inputenc}\\usepackage{booktabs}"
        f"\\begin{{document}}\n{table}\n\\end{{document}}\n"
    )
    proc = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0


# ---------------------------------------------------------------- studies, every format


@pytest.mark.parametrize("fmt", ["rich", "markdown", "csv", "json", "latex"])
def test_a_scaling_study_reports_in_every_format(tmp_path: Path, fmt: str) -> None:
    store = ExperimentStore(tmp_path / "scaling")
    write_scaling(store)
    out = tmp_path / f"report.{fmt}"
    report("scaling", tmp_path, Console(width=200), fmt=fmt, output=out)
    text = out.read_text()
    assert "maml" in text and "fomaml" in text
    if fmt == "json":
        rows = json.loads(text)
        assert len(rows) == 6 and {r["solver"] for r in rows} == {"maml", "fomaml"}
        assert [r["inner_steps"] for r in rows if r["solver"] == "maml"] == [1, 2, 5]
        assert all(r["verdict"] for r in rows) and "config_json" not in rows[0]
        assert rows[0]["created_at"].startswith("2026-01-01")
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 6 and rows[0]["solver"] == "fomaml"  # Table 2's order
    if fmt == "latex":
        assert "\\toprule" in text and "inner\\_steps" in text
    if fmt == "rich":
        assert "K=5" in text and "memory grows" in text


def test_bench_and_several_studies_through_the_cli(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "outputs" / "bench")
    write_bench(store)
    proc = run_main("report", "-e", "bench", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["implementation"] for r in rows].count("reference loop") == 1
    assert next(r for r in rows if r["solver"] == "fomaml")["speedup_vs_loop"] == 20.0
    out = tmp_path / "bench.txt"
    report("bench", tmp_path / "outputs", Console(), output=out)
    assert "x its loop" in out.read_text()
    # two studies in one experiment: markdown has both, json asks which
    write_scaling(store)
    report("bench", tmp_path / "outputs", Console(), fmt="markdown", output=out)
    assert "## bench" in out.read_text() and "## scaling" in out.read_text()
    both = run_main("report", "-e", "bench", "--format", "json", cwd=tmp_path)
    assert both.returncode == 2 and "--table" in both.stderr
    assert len(both.stderr.strip().splitlines()) == 1
    report("bench", tmp_path / "outputs", Console(), fmt="json", output=out, table="scaling")
    assert len(json.loads(out.read_text())) == 6


def test_piped_report_honours_columns_env(store: ExperimentStore, tmp_path: Path) -> None:
    """Not a terminal: $COLUMNS when set (else 160); the report fits it, names whole."""
    proc = run_main("report", "-e", str(store.root), cwd=tmp_path, env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in ("finetune-full", "fomaml", "maml (tuned)", "reptile"):
        assert any(f"│ {name} " in line for line in lines), name
    log = run_main("report", "-e", str(store.root), cwd=tmp_path, env={"COLUMNS": ""})
    assert max(len(line) for line in log.stdout.splitlines()) <= 160
    assert any(len(line) > 120 for line in log.stdout.splitlines())
