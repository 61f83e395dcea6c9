"""The commands from Python: ``raybench.api.report``, ``raybench.plot`` and
``raybench.api.sensitivity`` give what ``raybench report``, ``plot`` and ``sensitivity``
give, through the same code, on the same stores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import one_line_error, run_main
from stores import comparison_store, sweep_store, write_scaling

import raybench
import raybench.api
from raybench.errors import RaybenchError

RAYBENCH = Path(sys.executable).parent / "raybench"

# (format, the CLI's further options, the API's keyword arguments)
REPORTS = [
    ("markdown", (), {}),
    ("markdown", ("--compact", "--columns", "family,test_acc,vs_best"),
     {"compact": True, "columns": ["family", "test_acc", "vs_best"]}),
    ("csv", ("--runs",), {"runs": True}),
    ("json", (), {}),
    ("latex", (), {}),
    ("rich", (), {"width": 120}),
    ("rich", ("--runs",), {"runs": True, "width": 120}),
    ("markdown", ("--table", "scaling"), {"table": "scaling"}),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "flags", "kwargs"), REPORTS, ids=lambda v: str(v))
def test_report_from_python_is_the_cli_text(
    tmp_path: Path, fmt: str, flags: tuple[str, ...], kwargs: dict
) -> None:
    store, _ = comparison_store(tmp_path / "exp")
    write_scaling(store)
    args = ("report", "-e", str(store.root), "--format", fmt, *flags)  # titles name the folder
    cli = run_main(*args, cwd=tmp_path, env={"COLUMNS": "120"})
    assert cli.returncode == 0, cli.stderr
    text = raybench.api.report(store.root, fmt=fmt, **kwargs)
    assert text == cli.stdout
    shown = "scaling" if kwargs.get("table") == "scaling" else "fomaml"
    assert shown in text and len(text.splitlines()) > 3


def test_report_of_a_sweep_and_its_defaults_from_python(tmp_path: Path) -> None:
    sweep_store(tmp_path / "sw")
    for defaults in (False, True):
        flags = ("--defaults",) if defaults else ()
        cli = run_main("report", "-e", "sw", "--out", str(tmp_path), "--format", "json",
                       *flags, cwd=tmp_path)  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert raybench.api.report("sw", out=tmp_path, fmt="json", defaults=defaults) == cli.stdout
    tuned = raybench.api.report("sw", out=tmp_path)
    assert tuned != raybench.api.report("sw", out=tmp_path, defaults=True)


def test_report_errors_are_raybench_errors_as_in_the_cli(tmp_path: Path) -> None:
    comparison_store(tmp_path / "exp")
    with pytest.raises(RaybenchError, match="unknown fmt 'yaml'"):
        raybench.api.report("exp", out=tmp_path, fmt="yaml")
    one_line_error(run_main("report", "-e", "exp", "--out", str(tmp_path), "--format", "yaml",
                            cwd=tmp_path), "'yaml'")  # fmt: skip
    with pytest.raises(RaybenchError, match="no scaling table"):
        raybench.api.report("exp", out=tmp_path, table="scaling")
    with pytest.raises(RaybenchError, match="no experiments"):
        raybench.api.report(out=tmp_path / "empty")


def test_plot_from_python_draws_what_the_cli_draws(tmp_path: Path) -> None:
    store, _ = comparison_store(tmp_path / "exp")
    write_scaling(store)
    cli = run_main("plot", "-e", "exp", "--out", str(tmp_path), "--dir", "by-cli", "--dpi", "20",
                   cwd=tmp_path)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    figures = raybench.plot("exp", out=tmp_path, directory=tmp_path / "by-api", dpi=20)
    assert figures.experiment == "exp" and figures.directory == tmp_path / "by-api"
    drawn = sorted(p.name for p in (tmp_path / "by-cli").iterdir())
    assert sorted(p.name for p in figures.written) == drawn and "scaling-memory.png" in drawn
    for path in figures.written:  # the same figures, byte for byte
        assert path.read_bytes() == (tmp_path / "by-cli" / path.name).read_bytes()
    for reason in figures.skipped:  # and the same reasons for what neither drew
        assert f"skipped {reason}" in " ".join(cli.stdout.split())
    assert figures.skipped  # a store without a sweep or fidelity has kinds to skip
    assert figures.size == "240x120 px" and f"figure(s), {figures.size}, in" in cli.stdout
    default = raybench.plot(store.root, dpi=20)  # by folder, into <experiment>/plots
    assert default.directory == store.root / "plots" and default.written


def test_plot_errors_are_raybench_errors(tmp_path: Path) -> None:
    comparison_store(tmp_path / "exp")
    with pytest.raises(RaybenchError, match="format"):
        raybench.plot("exp", out=tmp_path, fmt="gif")
    empty = tmp_path / "studies-only"
    (empty / "runs").mkdir(parents=True)
    with pytest.raises(RaybenchError, match="nothing to plot"):
        raybench.plot(empty, dpi=20)
    assert not (empty / "plots").exists() or not any((empty / "plots").iterdir())


@pytest.mark.slow
def test_sensitivity_from_python_is_the_cli_study(tmp_path: Path) -> None:
    """The same study through ``raybench sensitivity`` (a real process) and
    ``raybench.api.sensitivity``: the same runs, the same table of values, bit for bit."""
    import pyarrow.parquet as pq

    from raybench.execution import ExecutionOptions

    args = ("--solver", "reptile", "--param", "outer_lr", "--values", "0.001,0.1",
            "--preset", "smoke", "--backend", "inline")  # fmt: skip
    proc = subprocess.run(
        [str(RAYBENCH), "sensitivity", *args, "-e", "by-cli"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    made = raybench.api.sensitivity(
        "reptile", "outer_lr", [0.001, 0.1], preset="smoke", experiment="by-api",
        out=tmp_path / "outputs", execution=ExecutionOptions(backend="inline"),
    )  # fmt: skip
    assert made.setting == "outer_lr" and not made.failed
    assert [o.status for o in made.experiment.outcomes] == ["completed", "completed"]
    by_cli = pq.read_table(tmp_path / "outputs" / "by-cli" / "study.parquet")
    assert made.table.equals(by_cli) and made.table.num_rows == 2
    stored = pq.read_table(tmp_path / "outputs" / "by-api" / "study.parquet")
    assert stored.equals(made.table)
    with pytest.raises(RaybenchError, match="unknown setting"):
        raybench.api.sensitivity("reptile", "outer", "1", preset="smoke", out=tmp_path)


# ----------------------------------------------------------------- measuring commands

# what two measurements of one thing may differ in: when, which experiment, and what was
# measured (time, memory, load and the rates and estimates made from them)
MEASURED = {"created_at", "study_id", "experiment", "cpu_load", "peak_memory_mb", "gflops",
            "matmul_gflops", "peak_fraction", "implied_run_s", "speedup_vs_loop",
            "spread"}  # fmt: skip


def measured_rows(table, keys: tuple[str, ...]) -> dict:
    """Each row by ``keys``, without what differs between two measurements of one thing."""
    rows = {}
    for row in table.to_pylist():
        rows[tuple(row[k] for k in keys)] = {
            k: v for k, v in row.items() if k not in MEASURED and not k.startswith(("ms_", "time"))
        }
    return rows


def test_fidelity_from_python_is_the_cli_study(tmp_path: Path) -> None:
    """The same meta-gradients through ``raybench fidelity`` and ``raybench.api.fidelity``:
    every number bit for bit (they are deterministic), the same files."""
    import pyarrow.dataset as ds

    args = ("--preset", "smoke", "--set", "hidden=8", "--tasks", "2", "--solvers",
            "maml,fomaml,neumann", "--sweep", "neumann.terms=0,1")  # fmt: skip
    cli = run_main("fidelity", *args, "-e", "by-cli", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    made = raybench.api.fidelity(
        "maml,fomaml,neumann", "smoke", settings=["hidden=8"], tasks=2,
        sweeps=["neumann.terms=0,1"], experiment="by-api", out=tmp_path / "outputs",
    )  # fmt: skip
    assert isinstance(made, raybench.api.Measurement) and made.experiment.name == "by-api"
    by_cli = ds.dataset(tmp_path / "outputs" / "by-cli" / "fidelity").to_table()
    keys = ("point", "solver", "knob_value")
    assert made.table.num_rows == by_cli.num_rows == 4  # maml, fomaml, neumann 0 and 1
    assert measured_rows(made.table, keys).keys() == measured_rows(by_cli, keys).keys()
    for key, row in measured_rows(by_cli, keys).items():
        assert measured_rows(made.table, keys)[key] == {**row}, key
    assert [p.parent.name for p in made.files] == ["fidelity"] and made.files[0].is_file()
    assert ds.dataset(made.files).to_table().equals(made.table)


def test_measuring_errors_name_the_parameter_as_the_caller_spells_it(tmp_path: Path) -> None:
    """One message, two spellings: the keyword from Python, the flag from the CLI."""
    with pytest.raises(RaybenchError) as from_python:
        raybench.api.fidelity("maml", "smoke", init=False, out=tmp_path)
    assert str(from_python.value) == (
        "nothing to compare at: give source, checkpoints, or keep init"
    )
    cli = run_main("fidelity", "--preset", "smoke", "--no-init", cwd=tmp_path)
    assert one_line_error(cli) == (
        "raybench: error: nothing to compare at: give --from, --checkpoint, or keep --init"
    )
    with pytest.raises(RaybenchError, match=r"^inner_steps expects .* got '1,\{two\}'$"):
        raybench.api.scaling("maml", "smoke", inner_steps="1,{two}", out=tmp_path)
    cli = run_main("scaling", "--preset", "smoke", "--inner-steps", "1,{two}", cwd=tmp_path)
    assert one_line_error(cli).startswith("raybench: error: --inner-steps expects")
    with pytest.raises(RaybenchError, match=r"^ab changes ways"):
        raybench.api.bench_ab("maml", {"ways": 20}, "smoke")
    assert not (tmp_path / "outputs").exists()  # nothing made before the refusal


@pytest.mark.slow
def test_bench_and_scaling_from_python_measure_what_the_cli_measures(tmp_path: Path) -> None:
    """The same measurements (solvers, settings, steps, threads) through the CLI and the
    API, stored alike; only the times and memory measured differ."""
    import pyarrow.dataset as ds

    cli = run_main("bench", "--solvers", "fomaml", "--preset", "smoke", "--timed-steps", "1",
                   "--warmup", "0", "--no-reference", "-e", "b-cli", cwd=tmp_path)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    bench = raybench.api.bench(
        ["fomaml"], "smoke", timed_steps=1, warmup=0, reference=False, experiment="b-api",
        out=tmp_path / "outputs",
    )  # fmt: skip
    by_cli = ds.dataset(tmp_path / "outputs" / "b-cli" / "bench").to_table()
    assert measured_rows(bench.table, ("solver",)) == measured_rows(by_cli, ("solver",))
    assert set(measured_rows(by_cli, ("solver",))) == {("fomaml",)}  # one row, the solver's
    assert ds.dataset(bench.files).to_table().equals(bench.table)

    args = ("--solvers", "fomaml", "--preset", "smoke", "--set", "hidden=8",
            "--inner-steps", "1", "--timed-steps", "1", "--warmup", "0")  # fmt: skip
    cli = run_main("scaling", *args, "-e", "s-cli", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    scaled = raybench.api.scaling(
        "fomaml", "smoke", settings={"hidden": 8}, inner_steps=[1], timed_steps=1,
        warmup=0, experiment="s-api", out=tmp_path / "outputs",
    )  # fmt: skip
    by_cli = ds.dataset(tmp_path / "outputs" / "s-cli" / "scaling").to_table()
    keys = ("solver", "inner_steps")
    assert measured_rows(scaled.table, keys) == measured_rows(by_cli, keys)
    assert len(measured_rows(scaled.table, keys)) == 1
    assert all(r["error"] is None for r in scaled.table.to_pylist())


def test_bench_ab_from_python_compares_what_the_cli_compares(tmp_path: Path) -> None:
    """``raybench bench --ab`` prints the results :func:`raybench.api.bench_ab` returns:
    the same solver, change, rounds and meta-gradient difference (computed at the common
    start, the same in both; a changed inner lr makes it far from zero); only the times
    differ. The caller's torch threads are given back."""
    import torch

    cli = run_main(
        "bench", "--solvers", "fomaml", "--preset", "smoke", "--set", "hidden=8",
        "--ab", "inner_lr=0.123", "--timed-steps", "1", "--warmup", "0",
        cwd=tmp_path, env={"COLUMNS": "200"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    ours = torch.get_num_threads()
    torch.set_num_threads(ours + 1)  # a caller's own setting; the A/B runs on one thread
    try:
        (result,) = raybench.api.bench_ab(
            "fomaml", {"inner_lr": 0.123}, "smoke", settings={"hidden": 8}, rounds=1, warmup=0
        )
        assert torch.get_num_threads() == ours + 1
    finally:
        torch.set_num_threads(ours)
    assert (result.solver, result.changed, result.rounds) == ("fomaml", "inner_lr=0.123", 1)
    assert result.grad_difference > 1e-3
    row = next(line for line in cli.stdout.splitlines() if "inner_lr=0.123" in line)
    assert f"{result.grad_difference:.1e}" in row and "fomaml" in row
    assert not (tmp_path / "outputs").exists()  # an A/B comparison stores nothing
