"""Default against tuned in the report, on a fabricated sweep store (no training): the tuned
rows with the default's accuracy and the seed-paired tuning gain beside them, the vs-best
comparison among the tuned rows only (``--defaults``: among the defaults), a solver whose
search selected its default shown once and said so, the same columns in every format, and
the protocol printed, through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from cli_checks import run_main
from stores import sweep_store

from raybench import api
from raybench.report.significance import compare
from raybench.report.tuning import DEFAULT_SELECTED, NO_TUNED, TUNING_NAMES


def test_tuned_rows_carry_the_default_and_the_seed_paired_gain(tmp_path: Path) -> None:
    store, m = sweep_store(tmp_path / "sw")
    rows = {r["solver"]: r for r in api.summary_records(store)}
    assert sorted(rows) == ["fomaml", "maml", "penalty"]  # one row per solver
    maml = rows["maml"]
    assert maml["source"] == "tuned" and maml["tuned_values"] == "inner_lr=0.05"
    assert maml["test_acc"] == pytest.approx(m["maml-tuned"].mean())
    assert maml["default_acc"] == pytest.approx(m["maml-default"].mean())
    expected = compare(m["maml-tuned"], m["maml-default"], paired=True)
    assert maml["tuning_gain"] == pytest.approx(expected.diff)
    assert maml["tuning_gain"] == pytest.approx((m["maml-tuned"] - m["maml-default"]).mean())
    assert maml["tuning_gain_ci95"] == pytest.approx(expected.half_width)
    assert maml["tuning_gain_p"] == pytest.approx(expected.p_value)
    assert maml["tuning_gain_method"] == "seed-paired"
    # a solver whose default won has one configuration, and says so; no gain to estimate
    fomaml, penalty = rows["fomaml"], rows["penalty"]
    assert fomaml["source"] == "default" and fomaml["tuned_values"] == DEFAULT_SELECTED
    assert penalty["tuned_values"] == NO_TUNED
    assert fomaml["tuning_gain"] is None and fomaml["default_acc"] == fomaml["test_acc"]
    # vs best among the rows shown: maml's default is not a competitor of its tuned row
    assert maml["vs_best_verdict"] == "best"
    best_of_fomaml = compare(m["fomaml-default"], m["maml-tuned"], paired=True)
    assert fomaml["vs_best"] == pytest.approx(best_of_fomaml.diff)


def test_the_defaults_table_compares_the_defaults(tmp_path: Path) -> None:
    store, m = sweep_store(tmp_path / "sw")
    rows = {r["solver"]: r for r in api.summary_records(store, defaults=True)}
    assert {r["source"] for r in rows.values()} == {"default"}
    assert rows["maml"]["test_acc"] == pytest.approx(m["maml-default"].mean())
    assert rows["maml"]["tuning_gain"] == pytest.approx(
        (m["maml-tuned"] - m["maml-default"]).mean()
    )
    assert rows["maml"]["vs_best_verdict"] == "best"  # 80% against fomaml's 79% and 70%
    assert rows["penalty"]["vs_best_verdict"] == "worse"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Through the entry point in this process: ``report`` only reads the store."""
    proc = run_main(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_every_format_carries_the_columns_and_the_protocol(tmp_path: Path) -> None:
    sweep_store(tmp_path / "outputs" / "sw")
    rows = json.loads(cli("report", "-e", "sw", "--format", "json", cwd=tmp_path).stdout)
    assert [r["solver"] for r in rows].count("maml") == 1
    maml = next(r for r in rows if r["solver"] == "maml")
    assert maml["tuning_gain"] > 0 and maml["tuning_gain_method"] == "seed-paired"
    text = cli("report", "-e", "sw", "--format", "csv", cwd=tmp_path).stdout
    header = next(csv.reader(io.StringIO(text)))
    assert set(TUNING_NAMES) <= set(header)
    markdown = cli("report", "-e", "sw", "--format", "markdown", cwd=tmp_path).stdout
    assert "| tuning_gain |" in markdown
    assert "tuning protocol: trials: 2 per solver, the solver's default configuration first" in (
        markdown
    )
    assert "tuning protocol: selection: the best completed trial by final validation" in markdown
    compact = cli("report", "-e", "sw", "--format", "markdown", "--compact", cwd=tmp_path).stdout
    (line,) = [ln for ln in compact.splitlines() if ln.startswith("| maml (tuned)")]
    assert f"{maml['tuning_gain']:+.2f} ± {maml['tuning_gain_ci95']:.2f} *" in line
    assert "default selected" in compact
    # the README's tuned table: what tuning changed, and what the comparison can detect
    columns = "test_acc,vs_best,vs_best_detectable,tuning_gain,ms,tuned_values"
    readme = cli(
        "report", "-e", "sw", "--format", "markdown", "--compact", "--columns", columns,
        cwd=tmp_path,
    ).stdout  # fmt: skip
    header = next(ln for ln in readme.splitlines() if ln.startswith("| solver"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "solver", "test acc. % (95% CI)", "Δ best (95% CI)", "detects (80%)",
        "tuning gain (95% CI)", "ms/step", "tuned values",
    ]  # fmt: skip
    for r in rows:
        (line,) = [ln for ln in readme.splitlines() if ln.startswith(f"| {r['solver']} (")]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[6] == r["tuned_values"]
        if r["vs_best_detectable"] is not None:
            assert cells[3] == f"{r['vs_best_detectable']:.1f}"
    assert sum(r["vs_best_detectable"] is not None for r in rows) >= 2  # all but the best
    assert "detects (80%): the difference from the best row" in readme
    assert "tuning gain: tuned minus default" in readme
    latex = cli("report", "-e", "sw", "--format", "latex", cwd=tmp_path).stdout
    assert "Tuning gain" in latex and "% tuning protocol: budget: 500 meta-steps" in latex
    rich = cli(
        "report",
        "-e",
        "sw",
        cwd=tmp_path,
    ).stdout
    assert "Tuning gain" in rich and "Tuning protocol: final runs: default and selected" in rich
    defaults = json.loads(
        cli("report", "-e", "sw", "--format", "json", "--defaults", cwd=tmp_path).stdout
    )
    assert {r["source"] for r in defaults} == {"default"} and len(defaults) == 3
