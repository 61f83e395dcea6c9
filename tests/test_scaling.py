"""Memory and time scaling with inner steps: the table, the verdicts, the expected shape."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import torch
from cli_checks import run_main
from rich.console import Console

from raybench.cli import main
from raybench.data import OmniglotImages
from raybench.measurements.scaling import (
    SCALING_SCHEMA,
    Verdict,
    scaling_table,
    setting_groups,
    verdicts,
)
from raybench.report.measurements import scaling_renderables

RAYBENCH = Path(sys.executable).parent / "raybench"
TINY = {"hidden": 8, "meta_batch": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Speed only: on a shared two-core machine two torch threads can be far slower."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_table_rows_and_columns_in_process(omniglot: OmniglotImages) -> None:
    table = scaling_table(
        preset="smoke",
        overrides=TINY,
        solvers=["fomaml", "finetune-head"],
        inner_steps=[2, 1],
        steps=1,
        warmup=1,
        isolate=False,
        data=omniglot,
        experiment="t",
    )
    assert table.schema == SCALING_SCHEMA
    rows = table.to_pylist()
    assert [(r["solver"], r["inner_steps"], r["inner_steps_matter"]) for r in rows] == [
        ("fomaml", 1, True),
        ("fomaml", 2, True),
        ("finetune-head", 1, False),  # a pre-training step: measured once
    ]
    for row in rows:
        assert row["error"] is None and row["ms_per_step"] > 0 and row["ms_min"] > 0
        assert row["ms_min"] <= row["ms_per_step"] <= row["ms_max"]
        assert (row["timed_steps"], row["warmup_steps"]) == (1, 1)
        assert row["peak_memory_mb"] is not None
        assert row["memory_kind"] == "cpu_peak_rss_delta_in_process" and not row["isolated"]
        assert (row["meta_batch"], row["ways"], row["shots"], row["query"]) == (2, 5, 1, 5)
        assert row["device"].startswith("cpu") and row["threads"] == 1
        assert row["experiment"] == "t" and row["schema_version"] == 1
    ((_, group),) = setting_groups(table)
    found = {v.solver: v for v in verdicts(group)}
    assert found["finetune-head"].expected is None
    assert "measured once" in found["finetune-head"].text
    assert found["fomaml"].text.startswith("too few points: 2 inner-step count(s)")


def synthetic(
    memory: dict[str, list[float]],
    families: dict[str, str],
    counts: tuple[int, ...] = (1, 5, 20),
    time: dict[str, list[float]] | None = None,
) -> pa.Table:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [
        {
            "solver": solver,
            "family": families[solver],
            "inner_steps": k,
            "inner_steps_matter": True,
            "ms_per_step": (time or {}).get(solver, [10.0 * k for k in counts])[i],
            "peak_memory_mb": mb,
            "memory_kind": "cpu_peak_rss_delta",
            "device": "cpu: test",
            "created_at": now,
        }
        for solver, values in memory.items()
        for i, (k, mb) in enumerate(zip(counts, values))
    ]
    return pa.Table.from_pylist(rows, schema=SCALING_SCHEMA)


def found(table: pa.Table) -> dict[str, Verdict]:
    ((_, rows),) = setting_groups(table)
    return {v.solver: v for v in verdicts(rows)}


def test_verdicts_judge_memory_against_the_expected_shape() -> None:
    table = synthetic(
        {"maml": [100, 300, 1050], "fomaml": [80, 81, 80.5], "neumann": [90, 200, 600]},
        {"maml": "second-order", "fomaml": "first-order", "neumann": "implicit"},
    )
    ((_, rows),) = setting_groups(table)
    v = found(table)
    assert [x.solver for x in verdicts(rows)] == ["fomaml", "neumann", "maml"]  # family order
    assert v["maml"].observed == "grows" and v["maml"].as_expected
    assert v["maml"].memory_ratio == pytest.approx(10.5)
    assert v["maml"].mb_per_inner_step == pytest.approx(50, rel=0.05)
    assert "memory grows: +50" in v["maml"].text and "10.5x" in v["maml"].text
    assert v["fomaml"].observed == "flat" and v["fomaml"].as_expected
    assert v["neumann"].as_expected is False
    assert "NOT as expected (flat for implicit)" in v["neumann"].text


def test_two_inner_step_counts_are_too_few_for_a_trend() -> None:
    """Two points always make a line: no verdict, and no "as expected", from them."""
    v = found(
        synthetic({"maml": [100, 1050], "fomaml": [80, 80]},
                  {"maml": "second-order", "fomaml": "first-order"}, counts=(1, 20))
    )  # fmt: skip
    for solver in ("maml", "fomaml"):
        assert v[solver].observed is None and v[solver].as_expected is None
        assert v[solver].text.startswith("too few points: 2 inner-step count(s) measured (1, 20)")
        assert "needs 3" in v[solver].text and "expected" not in v[solver].text


def test_the_verdict_follows_the_printed_slope_by_the_stated_rule() -> None:
    """+5.2 MiB per inner step over 1 to 20 on a 600 MiB base was once called flat; the
    verdict now comes from the slope it prints: grows when the line rises by more than
    10% of its start (and 2 MiB), flat within that band, with the band printed."""
    counts = (1, 5, 10, 20)
    v = found(
        synthetic(
            {
                "maml": [600 + 5.2 * k for k in counts],  # +98.8 MiB: more than 60
                "penalty": [600 + 2.0 * k for k in counts],  # +38 MiB: within ±60
                "fomaml": [0.5, 0.4, 0.6, 0.5],  # tiny: the 2 MiB floor applies
                "imaml": [50 - 2.0 * k for k in counts],  # falls by 38 MiB
            },
            {"maml": "second-order", "penalty": "penalty", "fomaml": "first-order",
             "imaml": "implicit"},
            counts=counts,
        )
    )  # fmt: skip
    assert v["maml"].observed == "grows" and "+5.2 MiB per inner step" in v["maml"].text
    assert v["penalty"].observed == "flat" and "+2 MiB per inner step" in v["penalty"].text
    assert "within ±60.2 MiB" in v["penalty"].text and "NOT as expected" in v["penalty"].text
    assert v["fomaml"].observed == "flat" and "within ±2 MiB" in v["fomaml"].text
    assert v["imaml"].observed == "shrinks" and v["imaml"].as_expected is False
    for verdict in v.values():  # the rule, recomputed from the verdict's own slope
        change = verdict.mb_per_inner_step * (verdict.last_steps - verdict.first_steps)
        if verdict.observed == "flat":
            assert abs(change) <= max(0.1 * 600, 2.0)
        else:
            assert (change > 0) == (verdict.observed == "grows")


def test_time_is_reported_as_measured_never_as_expected() -> None:
    """A solver whose time fell with the inner steps was listed under "time grows for all"
    with "as expected" beside it."""
    counts = (1, 5, 20)
    table = synthetic(
        {"fomaml": [80, 80, 80], "maml": [100, 300, 1050]},
        {"fomaml": "first-order", "maml": "second-order"},
        counts=counts,
        time={"fomaml": [90.0, 60.0, 30.0], "maml": [10.0, 50.0, 200.0]},
    )
    v = found(table)
    assert v["fomaml"].time_observed == "shrinks" and "time shrinks" in v["fomaml"].text
    assert v["maml"].time_observed == "grows" and "time grows" in v["maml"].text
    assert v["fomaml"].text.index("as expected") < v["fomaml"].text.index("time")
    console = Console(width=200, record=True)
    for renderable in scaling_renderables(table):
        console.print(renderable)
    text = " ".join(console.export_text().split())  # titles wrap to the table's width
    assert "time grows for all" not in text
    assert "trend rule" in text and "at least 3" in text
    assert "cpu_peak_rss_delta" not in text  # titles name what was measured, not the key
    assert "growth of resident memory during the step" in text


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAYBENCH), *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_expected_shape_through_the_cli(omniglot: OmniglotImages, tmp_path: Path) -> None:
    """Each measurement in a fresh process: MAML's step memory grows with the inner steps,
    FOMAML's does not, even on a tiny model."""
    proc = cli(
        "scaling", "--preset", "smoke", "--set", "hidden=8", "--set", "meta_batch=2",
        "--set", "batching=vmap", "--solvers", "maml,fomaml", "--inner-steps", "1,2,4",
        "--timed-steps", "2", "--cpus-per-run", "1", "-e", "sc", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = ds.dataset(tmp_path / "outputs" / "sc" / "scaling").to_table().to_pylist()
    assert len(rows) == 2 * 3
    assert all(r["error"] is None and r["isolated"] for r in rows), rows
    assert {r["memory_kind"] for r in rows} == {"cpu_peak_rss_delta"}
    mb = {(r["solver"], r["inner_steps"]): r["peak_memory_mb"] for r in rows}
    maml_growth = mb["maml", 4] - mb["maml", 1]
    fomaml_growth = mb["fomaml", 4] - mb["fomaml", 1]
    assert maml_growth > 3.0, mb  # three more unrolled steps of activations and graph
    assert abs(fomaml_growth) < 1.5, mb
    assert "maml: memory grows" in proc.stdout and "fomaml: memory flat" in proc.stdout
    assert "NOT as expected" not in proc.stdout
    assert "Memory of a meta-step" in proc.stdout and "Time per meta-step" in proc.stdout

    report = run_main("report", "-e", "sc", cwd=tmp_path)  # reads only: in this process
    assert report.returncode == 0, report.stderr
    assert "Memory of a meta-step" in report.stdout and "maml: memory grows" in report.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--inner-steps", "1,two"], ["--inner-steps"]),
        (["--solvers", "mamll"], ["unknown solver 'mamll'"]),
        (["--set", "meta_batch=0"], ["meta_batch"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    """Through the console script's own entry point, in this process (no torch start-up)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["scaling", "--out", str(tmp_path / "outputs"), *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: error: ")
    assert all(word in lines[0] for word in words), lines
    assert not (tmp_path / "outputs").exists()
