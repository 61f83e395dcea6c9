"""`raybench bench`: every solver and the reference loops, timed the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import torch
from rich.console import Console

from raybench.data import OmniglotImages
from raybench.measurements.bench import (
    BENCH_SCHEMA,
    bench_table,
    bench_warnings,
    default_timing,
    reference_for,
    spread,
)
from raybench.measurements.measure import keep_timing, measure
from raybench.models import build_model
from raybench.reference import LoopReference, loop_meta_grad
from raybench.report.measurements import bench_rich
from raybench.solvers import make_config, make_solver

RAYBENCH = Path(sys.executable).parent / "raybench"


def test_loop_reference_is_the_loop_behind_the_solver_interface() -> None:
    config = make_config("maml", "smoke", {"hidden": 4, "dtype": "float64"})
    model = build_model(config.ways, config.hidden)
    solver = make_solver(config, model)
    loop = LoopReference(solver)
    params = model.init_params(0, torch.device("cpu"), torch.float64)
    g = torch.Generator().manual_seed(0)
    from raybench.tasks import TaskBatch

    batch = TaskBatch(
        torch.rand(2, 5, 1, 28, 28, generator=g, dtype=torch.float64),
        torch.arange(5).repeat(2, 1),
        torch.rand(2, 5, 1, 28, 28, generator=g, dtype=torch.float64),
        torch.arange(5).repeat(2, 1),
    )
    grads, _ = loop.meta_grad(params, batch)
    expected = loop_meta_grad(model, params, batch, inner_lr=0.01, inner_steps=2)
    assert all(torch.equal(grads[k], expected[k]) for k in params)
    fast, _ = solver.meta_grad(params, batch)  # and the vectorised solver agrees with it
    assert all(torch.allclose(fast[k], grads[k], atol=1e-10) for k in params)
    with pytest.raises(ValueError):
        LoopReference(make_solver(make_config("imaml", "smoke"), model))
    assert reference_for("implicit") == "maml" and reference_for("first-order") == "fomaml"


def test_timing_goes_on_until_enough_steps_or_time() -> None:
    """At least ``steps``; then more, up to ``max_steps``, while under ``min_time_s``."""
    assert keep_timing([], 5, 50, 15.0)
    assert keep_timing([4000.0] * 4, 5, 50, 15.0)  # fewer than the minimum
    assert not keep_timing([4000.0] * 5, 5, 50, 15.0)  # paper preset on a CPU: 20 s timed
    assert keep_timing([30.0] * 5, 5, 50, 15.0)  # smoke: 0.15 s, keep going
    assert not keep_timing([30.0] * 50, 5, 50, 15.0)  # ... up to the maximum
    assert not keep_timing([30.0] * 3, 3, 3, 0.0)  # a fixed count
    cpu, gpu = default_timing(torch.device("cpu")), default_timing(torch.device("cuda"))
    assert cpu.steps >= 5 and cpu.max_steps and cpu.max_steps > cpu.steps and cpu.min_time_s
    assert gpu.steps >= 20 and "at least 5" in cpu.describe()


def test_measure_times_the_planned_number_of_steps(omniglot: OmniglotImages) -> None:
    config = make_config("fomaml", "smoke", {"hidden": 4, "meta_batch": 1})
    fixed = measure(config, omniglot, steps=2, warmup=1, full_warmup=True)
    assert (fixed.timed_steps, fixed.warmup_steps) == (2, 1)
    assert fixed.ms_min <= fixed.ms_per_step <= fixed.ms_max
    more = measure(config, omniglot, steps=2, warmup=0, max_steps=4, min_time_s=1e6)
    assert more.timed_steps == 4  # the time budget is never reached: up to the maximum


def bench_rows(**changes) -> pa.Table:
    row = {
        "solver": "maml", "family": "second-order", "implementation": "vmap",
        "ms_per_step": 3300.0, "ms_min": 3000.0, "ms_max": 3400.0, "spread": 400 / 3300,
        "timed_steps": 5, "warmup_steps": 2, "cpu_load": 0.3, "device": "cpu: test",
        "threads": 1, "meta_steps": 2000, "implied_run_s": 6600.0, "speedup_vs_loop": None,
        "reference": None, "peak_memory_mb": 500.0, "memory_kind": "cpu_process_peak_rss",
        "error": None,
    } | changes  # fmt: skip
    return pa.Table.from_pylist([row], schema=BENCH_SCHEMA)


def render(table: pa.Table) -> str:
    console = Console(width=220, record=True)
    console.print(bench_rich(table))
    return console.export_text()


def test_a_wide_spread_few_steps_or_a_busy_cpu_are_warned_about() -> None:
    """2837 and 4098 ms/step for the same solver in two invocations, with 2 timed steps and
    nothing said: now the spread and the step count are shown, and doubts said."""
    quiet = bench_rows()
    assert bench_warnings(quiet) == []
    text = render(quiet)
    for column in ("ms/step (median)", "min", "max", "steps"):
        assert column in text
    assert "3300.0" in text and "3000.0" in text and "3400.0" in text
    assert "cpu_process_peak_rss" not in text  # named, not keyed

    wide = bench_rows(ms_min=2837.0, ms_max=4098.0, spread=(4098 - 2837) / 3300)
    (warning,) = bench_warnings(wide)
    assert "maml (vmap)" in warning and "38%" in warning
    assert "2837.0" in warning and "4098.0" in warning and "5 steps" in warning
    assert "warning: maml (vmap)" in render(wide)

    few = bench_rows(timed_steps=2)
    assert any("only 2 timed step(s)" in w for w in bench_warnings(few))
    busy = bench_rows(cpu_load=float(os.cpu_count() or 1) + 2)
    assert any("the CPU was busy" in w for w in bench_warnings(busy))
    assert spread(100.0, 90.0, 130.0) == pytest.approx(0.4) and spread(None, 1.0, 2.0) is None


@pytest.mark.slow
def test_bench_table_has_solvers_loops_and_ratios(omniglot: OmniglotImages) -> None:
    configs = [
        make_config("maml", "smoke", {"hidden": 8}),
        make_config("reptile", "smoke", {"hidden": 8, "batching": "vmap"}),
    ]
    table = bench_table(configs, omniglot, steps=2, warmup=1, threads=1).to_pylist()
    assert [(r["solver"], r["implementation"]) for r in table] == [  # how each maps tasks
        ("maml", "loop"),  # auto: a loop on a CPU
        ("reptile", "vmap"),
        ("maml", "reference loop"),
        ("fomaml", "reference loop"),
    ]
    for row in table:
        assert row["error"] is None and row["ms_per_step"] > 0 and row["peak_memory_mb"] is not None
        assert row["implied_run_s"] == pytest.approx(row["ms_per_step"] * 4 / 1000)
        assert row["ms_min"] <= row["ms_per_step"] <= row["ms_max"]
        assert (row["timed_steps"], row["warmup_steps"], row["threads"]) == (2, 1, 1)
        assert row["spread"] == pytest.approx((row["ms_max"] - row["ms_min"]) / row["ms_per_step"])
        assert row["flops_per_step"] > 0 and row["matmul_gflops"] > 0
        assert row["gflops"] == pytest.approx(row["flops_per_step"] / row["ms_per_step"] / 1e6)
        assert row["peak_fraction"] == pytest.approx(row["gflops"] / row["matmul_gflops"])
    maml, reptile, maml_loop, fomaml_loop = table
    assert maml["speedup_vs_loop"] == pytest.approx(maml_loop["ms_per_step"] / maml["ms_per_step"])
    assert reptile["reference"] == "fomaml loop"
    assert reptile["speedup_vs_loop"] == pytest.approx(
        fomaml_loop["ms_per_step"] / reptile["ms_per_step"]
    )


@pytest.mark.slow
def test_bench_cli_writes_parquet(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RAYBENCH), "bench", "--solvers", "fomaml", "--preset", "smoke", "--timed-steps", "1",
         "--warmup", "0", "--no-reference"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = ds.dataset(tmp_path / "outputs" / "bench" / "bench").to_table().to_pylist()
    assert row["solver"] == "fomaml" and row["device"].startswith("cpu")
    assert row["threads"] == 1  # on a CPU one thread unless told, as a run gets
    assert row["timed_steps"] == 1 and row["ms_min"] == row["ms_max"]
    assert "ms/step" in proc.stdout and "only 1 timed step(s)" in proc.stdout


def test_flops_are_counted_and_the_matmul_rate_is_measured() -> None:
    from raybench.measurements.flops import achieved, count_flops, matmul_gflops

    a, b = torch.randn(64, 32), torch.randn(32, 16)
    assert count_flops(lambda: a @ b) == 2 * 64 * 32 * 16
    assert matmul_gflops(n=128, repeats=3) > 0
    assert achieved(2 * 10**9, 500.0) == pytest.approx(4.0)  # 2 GFLOP in half a second
    assert achieved(None, 10.0) is None and achieved(10, None) is None


def test_a_meta_step_is_counted_on_its_per_task_form(omniglot) -> None:
    """The same step's arithmetic whichever way the tasks are mapped: FLOPs per step do not
    depend on the implementation timed, and MAML does more arithmetic than FOMAML."""
    from raybench.measurements.measure import measure

    counted = {}
    for solver in ("maml", "fomaml"):
        for batching in ("vmap", "loop"):
            config = make_config(solver, "smoke", {"batching": batching})
            m = measure(config, omniglot, steps=1, warmup=0, flops=True)
            assert m.matmul_gflops and m.matmul_gflops > 0
            counted[solver, batching] = m.flops_per_step
    assert counted["maml", "vmap"] == counted["maml", "loop"] > counted["fomaml", "loop"] > 0
