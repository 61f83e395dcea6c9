"""The summary's column catalogue (:mod:`raybench.report.summary_columns`): every summary
field in exactly one column, every column rendered in every format that declares it,
missing values as each format writes them, and a column a format cannot show refused in
one line. Stores are fabricated (no training)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from cli_checks import one_line_error, run_main
from rich.text import Text
from stores import comparison_store, sweep_store

import raybench.api as api
from raybench.report import summary_columns
from raybench.report.columns import parse_columns
from raybench.report.records import SUMMARY_SCHEMA
from raybench.report.summary_columns import (
    BY_NAME,
    SHOWN_FORMATS,
    STYLES,
    SUMMARY,
    Cell,
    shown_columns,
)


def test_every_summary_field_belongs_to_exactly_one_column() -> None:
    owners = Counter(name for column in SUMMARY for name in column.fields)
    assert set(owners) == set(SUMMARY_SCHEMA.names)
    assert [name for name, n in owners.items() if n > 1] == []
    for column in SUMMARY:  # a format shows a column one way: as a column or elsewhere
        assert set(column.headers) | set(column.elsewhere) <= set(SHOWN_FORMATS), column.name
        assert not set(column.headers) & set(column.elsewhere), column.name
        assert set(column.default) <= set(column.headers), column.name
        assert set(column.notes) <= set(column.headers), column.name


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with a failed run and a tuned configuration, and a sweep's (tuning columns)."""
    root = tmp_path_factory.mktemp("columns")
    comparison_store(root / "cmp")
    sweep_store(root / "sw")
    return {"cmp": str(root / "cmp"), "sw": str(root / "sw")}


def shown(text: str, fmt: str) -> str:
    """A cell's text as it appears in the output: the terminal without its markup and
    only its first line (a long cell wraps); Markdown with its pipes escaped."""
    if fmt == "rich":
        return Text.from_markup(text).plain.split("\n")[0]
    return text.replace("|", "\\|") if fmt == "markdown" else text


@pytest.mark.parametrize("fmt", SHOWN_FORMATS)
def test_every_column_renders_in_every_format_it_declares(stores: dict[str, str], fmt: str) -> None:
    """Asked for together, each column has its header, and each row its cell, in the
    output (one report per store: a report is seconds)."""
    declared = [c for c in SUMMARY if fmt in c.headers]
    for name, path in stores.items():
        records = api.summary_records(api.open_store(path))
        columns = [c.name for c in declared]
        text = api.report(path, fmt=fmt, compact=fmt == "markdown", columns=columns, width=900)
        for column in declared:
            header = column.headers[fmt].split("\n")[0]
            assert header in text, (name, fmt, column.name)
            for record in records:
                cell = column.cell(record, Cell(STYLES[fmt]))
                assert shown(cell, fmt) in text, (name, fmt, column.name, cell)


def test_a_missing_value_is_each_formats_missing_mark() -> None:
    """A record with nothing measured: every column but the solver's and the run counts
    writes the format's mark for nothing, and none raises."""
    record = dict.fromkeys(SUMMARY_SCHEMA.names)
    record |= {"setting": "5-way 1-shot, paper", "solver": "maml", "completed": 0}
    record |= {"diverged": 0, "failed": 0}
    for fmt in SHOWN_FORMATS:
        style = STYLES[fmt]
        for column in SUMMARY:
            if fmt in column.headers and column.name not in ("solver", "runs"):
                cell = column.cell(record, Cell(style))
                assert cell == style.missing, (fmt, column.name, cell)
    assert BY_NAME["runs"].cell(record, Cell(STYLES["latex"])) == "0/0/0"


def test_the_defaults_and_the_order_of_chosen_columns() -> None:
    names = [c.name for c in shown_columns("markdown", None, tuning=False)]
    assert names == ["solver", "family", "test_acc", "vs_best", "ms_per_step",
                     "peak_memory_mb", "wall_time_s"]  # fmt: skip
    names = [c.name for c in shown_columns("latex", None, tuning=True)]
    assert names == ["solver", "test_acc", "vs_best", "default", "tuning_gain", "ms_per_step",
                     "peak_memory_mb"]  # fmt: skip
    assert "meta_steps" not in [c.name for c in shown_columns("rich", None, tuning=True)]
    # solver, family (where chosen), accuracy first; then as given; a field for its column
    chosen = parse_columns("vs_best_p,mem,family,test_acc,setting")
    names = [c.name for c in shown_columns("markdown", chosen, tuning=False)]
    assert names == ["solver", "family", "test_acc", "vs_best", "peak_memory_mb"]
    # the terminal shows the family in the solver's column, the setting as the heading
    names = [c.name for c in shown_columns("rich", ["family", "setting", "errors"], False)]
    assert names == ["solver", "test_acc"]


def test_compact_markdown_shows_the_reference_column_it_was_asked_for(tmp_path: Path) -> None:
    """Formerly left out without a word; now a column, and every column it can show."""
    comparison_store(tmp_path / "outputs" / "exp")
    proc = run_main(
        "report", "-e", "exp", "--format", "markdown", "--compact", "--columns", "reference",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| solver"))
    assert header == "| solver | test acc. % (95% CI) | reference % |"


def test_a_column_the_format_cannot_show_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    comparison_store(tmp_path / "outputs" / "exp")
    errors = BY_NAME["errors"]
    latex_only = replace(errors, headers={"latex": errors.headers["latex"]}, elsewhere={})
    monkeypatch.setitem(summary_columns.BY_NAME, "errors", latex_only)
    proc = run_main(
        "report", "-e", "exp", "--format", "markdown", "--compact", "--columns", "ms,errors",
        cwd=tmp_path,
    )  # fmt: skip
    one_line_error(proc, "compact Markdown table cannot show column 'errors'", "ms_per_step")
    latex = run_main("report", "-e", "exp", "--format", "latex", "--columns", "errors",
                     cwd=tmp_path)  # fmt: skip
    assert latex.returncode == 0 and "Errors" in latex.stdout
