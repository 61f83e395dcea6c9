"""A store that survives bad files: unreadable, empty, junk, foreign and duplicate files are
skipped with one warning each; a run is identified by its run id, not its file name;
``raybench store check`` finds them all and ``--fix`` moves them to quarantine/."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from cli_checks import run_main
from test_store import fake_result

from raybench.report.records import aggregate_runs
from raybench.results import ExperimentStore
from raybench.resume import TrainingState, save_state
from raybench.solvers import make_config

RAYBENCH = Path(sys.executable).parent / "raybench"
KINDS = ("unreadable", "foreign", "duplicate", "orphaned", "leftover")


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The warning lines the store printed on stderr since the last call."""
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("raybench: warning: ")]


def two_seeds(root: Path) -> ExperimentStore:
    store = ExperimentStore(root)
    for seed, acc in ((0, 70.0), (1, 80.0)):
        store.write_run(fake_result("fomaml", seed, acc=acc, test_tasks_n=0))
    return store


def bad_files(folder: Path, good: Path) -> list[Path]:
    """A truncated, a zero-byte and a junk file, and a folder named like a table file."""
    folder.mkdir(parents=True, exist_ok=True)
    truncated, empty, junk, directory = (
        folder / n for n in ("cut.parquet", "empty.parquet", "junk.parquet", "dir.parquet")
    )
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty.write_bytes(b"")
    junk.write_text("this is not parquet\n")
    directory.mkdir()
    return [truncated, empty, junk, directory]


def test_unreadable_files_are_skipped_with_one_warning_each(tmp_path: Path, capsys) -> None:
    store = two_seeds(tmp_path / "exp")
    ids = sorted(r["run_id"] for r in store.read("runs").to_pylist())
    planted = []
    for table in ("runs", "curves", "tasks"):
        good = store.files("runs")[0]
        planted += bad_files(store.root / table, good)
    runs = store.read("runs")
    assert sorted(runs.column("run_id").to_pylist()) == ids
    assert store.read("curves").num_rows == 4  # 2 evaluations x 2 runs
    assert store.read("tasks").num_rows == 0
    store.read("runs")  # read again: no new warning
    warnings = printed(capsys)
    for path in planted:
        assert sum(str(path) in w for w in warnings) == 1, path
    assert len(warnings) == len(planted)
    assert all("store check" in w and "--fix" in w for w in warnings)
    assert store.finished_ids() == set(ids)


def test_an_unreadable_runs_file_makes_its_run_unfinished(tmp_path: Path, capsys) -> None:
    store = two_seeds(tmp_path / "exp")
    run_id = make_config("fomaml", "smoke", {"seed": 0}).run_id
    path = store.path("runs", run_id)
    path.write_bytes(path.read_bytes()[:100])
    assert not store.is_finished(run_id)
    assert store.finished_ids() == {make_config("fomaml", "smoke", {"seed": 1}).run_id}
    assert any(str(path) in w and "trained again" in w for w in printed(capsys))


def test_a_copied_runs_file_is_one_run_not_an_extra_seed(tmp_path: Path, capsys) -> None:
    store = two_seeds(tmp_path / "exp")
    runs, curves = store.read("runs"), store.read("curves")
    before = aggregate_runs(runs, curves, store.read("tasks"))
    for table in ("runs", "curves"):
        for path in store.files(table):
            shutil.copy(path, path.with_name(f"copy-of-{path.name}"))
    after_runs, after_curves = store.read("runs"), store.read("curves")
    assert sorted(after_runs.column("run_id").to_pylist()) == sorted(
        runs.column("run_id").to_pylist()
    )
    assert after_curves.num_rows == curves.num_rows
    after = aggregate_runs(after_runs, after_curves, store.read("tasks"))
    assert [(r["runs"], r["test_acc"], r["test_ci95"]) for r in after] == [
        (r["runs"], r["test_acc"], r["test_ci95"]) for r in before
    ]
    assert before[0]["runs"] == 2
    assert sum("copy-of-" in w and "counted once" in w for w in printed(capsys)) == 4


def test_a_foreign_file_is_not_a_phantom_row(tmp_path: Path, capsys) -> None:
    store = two_seeds(tmp_path / "exp")
    curves_file = store.files("curves")[0]
    shutil.copy(curves_file, store.root / "runs" / "stray.parquet")
    pq.write_table(
        pq.read_table(store.files("runs")[0]).drop_columns(["run_id"]),
        store.root / "curves" / "x.parquet",
    )
    runs = store.read("runs")
    assert runs.num_rows == 2 and None not in runs.column("status").to_pylist()
    assert store.read("curves").num_rows == 4
    warnings = printed(capsys)
    assert any("stray.parquet" in w and "not a runs file" in w for w in warnings)
    assert any("x.parquet" in w and "not a curves file" in w for w in warnings)


def test_fidelity_from_skips_a_run_whose_checkpoint_is_truncated(tmp_path: Path) -> None:
    from raybench.measurements.fidelity import run_points

    store = ExperimentStore(tmp_path / "exp")
    for seed in (0, 1):
        store.write_run(fake_result("maml", seed))
    broken = make_config("maml", "smoke", {"seed": 1}).run_id
    ckpt = store.root / "checkpoints" / f"{broken}.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    bad_files(store.root / "runs", store.files("runs")[0])
    points, notes = run_points(store)
    assert [p.source for p in points] == [f"exp/{make_config('maml', 'smoke').run_id}"]
    assert any(broken in n and "damaged or truncated" in n for n in notes)


def test_a_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    from raybench.errors import RaybenchError
    from raybench.measurements.fidelity import checkpoint_point

    text = tmp_path / "notes.pt"
    text.write_text("e = 1\n")
    with pytest.raises(RaybenchError, match=r"not a file saved by torch\.save"):
        checkpoint_point(text)


# -- raybench store check, through the real entry point --------------------------------


def planted_store(root: Path) -> tuple[ExperimentStore, dict[str, str]]:
    """A store with one file of every kind `store check` must find; returns {path: kind}."""
    store = two_seeds(root)
    store.write_run(fake_result("maml", 0, status="failed", test_acc_mean=None))
    good = store.files("runs")[0]
    expected = {}
    for path in bad_files(store.root / "runs", good):
        expected[str(path.relative_to(store.root))] = "unreadable"
    shutil.copy(good, store.root / "runs" / "copy.parquet")
    expected["runs/copy.parquet"] = "duplicate"
    shutil.copy(store.files("curves")[0], store.root / "runs" / "stray.parquet")
    expected["runs/stray.parquet"] = "foreign"
    lost = fake_result("reptile", 5)
    from raybench.results.schema import curve_rows

    pq.write_table(curve_rows(lost, "exp"), store.path("curves", lost.config.run_id))
    expected[f"curves/{lost.config.run_id}.parquet"] = "orphaned"
    finished = make_config("fomaml", "smoke", {"seed": 0})
    failed = make_config("maml", "smoke", {"seed": 0})
    for config in (finished, failed):  # a state of a finished run, one of a failed run
        state = TrainingState(2, {"w": torch.ones(2)}, {}, torch.Generator().get_state())
        save_state(store.progress_path(config.run_id), config, state)
    expected[f"progress/{finished.run_id}.pt"] = "orphaned"
    (store.root / "progress" / "junk.pt").write_bytes(b"\x80junk")
    expected["progress/junk.pt"] = "unreadable"
    (store.root / "runs" / ".tmp-123-x.parquet").write_bytes(b"half")
    expected["runs/.tmp-123-x.parquet"] = "leftover"
    (store.root / "run.json").write_text('{"configs": [')
    expected["run.json"] = "unreadable"
    return store, expected


def test_store_check_lists_every_bad_file_and_fix_quarantines_them(tmp_path: Path) -> None:
    store, expected = planted_store(tmp_path / "outputs" / "exp")
    rows_before = sorted(r["run_id"] for r in store.read("runs").to_pylist())
    checked = run_main("store", "check", "-e", "exp", cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr + checked.stdout
    assert "Traceback" not in checked.stderr
    listed = {}
    for line in checked.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in KINDS:
            listed[parts[1].rstrip(":")] = parts[0]
    assert listed == expected
    fixed = run_main("store", "check", "-e", "exp", "--fix", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    for relative in expected:
        assert not (store.root / relative).exists(), relative
        assert (store.root / "quarantine" / relative).exists(), relative
    again = run_main("store", "check", cwd=tmp_path)  # every experiment under outputs/
    assert again.returncode == 0 and "ok" in again.stdout, again.stdout
    store = ExperimentStore(store.root)
    assert sorted(r["run_id"] for r in store.read("runs").to_pylist()) == rows_before
    failed = make_config("maml", "smoke", {"seed": 0}).run_id
    assert store.progress_path(failed).is_file()  # a failed run's state is pending: kept


def test_report_warns_and_names_a_run_without_curves(tmp_path: Path) -> None:
    store = two_seeds(tmp_path / "outputs" / "exp")
    bad = bad_files(store.root / "runs", store.files("runs")[0])
    lost = make_config("fomaml", "smoke", {"seed": 1}).run_id
    store.path("curves", lost).unlink()
    proc = run_main("report", "-e", "exp", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["runs"] for r in rows] == [2]
    warnings = proc.stderr.strip().splitlines()
    assert all(line.startswith("raybench: warning: ") for line in warnings)
    assert any(f"run {lost} has no curves file" in w for w in warnings)
    for path in bad:
        assert sum(str(path.relative_to(tmp_path)) in w for w in warnings) == 1
    plotted = run_main("plot", "-e", "exp", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert "Traceback" not in plotted.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused(tmp_path: Path) -> None:
    from raybench.errors import RaybenchError
    from raybench.results.store import ensure_writable

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(RaybenchError, match="not writable"):
            ensure_writable(folder / "exp")
    finally:
        folder.chmod(0o755)
