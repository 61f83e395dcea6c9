"""`raybench bench`: every solver and the reference loops, timed the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import torch

from raybench.data import OmniglotImages
from raybench.models import build_model
from raybench.reference import LoopReference, loop_meta_grad
from raybench.solvers import make_config, make_solver
from raybench.studies.bench import bench_table, reference_for

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


@pytest.mark.slow
def test_bench_table_has_solvers_loops_and_ratios(omniglot: OmniglotImages) -> None:
    configs = [make_config(s, "smoke", {"hidden": 8}) for s in ("maml", "reptile")]
    table = bench_table(configs, omniglot, steps=1, warmup=0, threads=1).to_pylist()
    assert [(r["solver"], r["implementation"]) for r in table] == [
        ("maml", "vectorised"),
        ("reptile", "vectorised"),
        ("maml", "reference loop"),
        ("fomaml", "reference loop"),
    ]
    for row in table:
        assert row["error"] is None and row["ms_per_step"] > 0 and row["peak_memory_mb"] is not None
        assert row["implied_run_s"] == pytest.approx(row["ms_per_step"] * 4 / 1000)
    maml, reptile, maml_loop, fomaml_loop = table
    assert maml["speedup_vs_loop"] == pytest.approx(maml_loop["ms_per_step"] / maml["ms_per_step"])
    assert reptile["reference"] == "fomaml loop"
    assert reptile["speedup_vs_loop"] == pytest.approx(
        fomaml_loop["ms_per_step"] / reptile["ms_per_step"]
    )


@pytest.mark.slow
def test_bench_cli_writes_parquet(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RAYBENCH), "bench", "--solvers", "fomaml", "--preset", "smoke", "--steps", "1",
         "--warmup", "0", "--threads", "1", "--no-reference"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = ds.dataset(tmp_path / "outputs" / "bench" / "bench").to_table().to_pylist()
    assert row["solver"] == "fomaml" and row["device"].startswith("cpu")
    assert "ms/step" in proc.stdout
