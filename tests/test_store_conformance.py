"""A file is judged by the schema raybench declares, never by the other files of its folder.

Faults are planted in a fabricated store of four configurations x three seeds with per-task
results (``stores.comparison_store``): a column of another type, an implausible value, a
repeated row. Each is asserted on what a user sees: the counts of ``report --format json``,
``compare``, the validation figure, and ``store check`` before and after ``--fix``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_checks import one_line_error, run_main
from stores import comparison_store

from raybench.report.plots import run_groups
from raybench.report.plots.runs import validation_figure
from raybench.results import ExperimentStore
from raybench.solvers import make_config

N_TASKS = 200
EXPECTED_RUNS = {"maml": 3, "maml-tuned": 3, "fomaml": 3, "finetune-full": 3}


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    return comparison_store(tmp_path / "outputs" / "exp", seed=2)[0]


def fomaml_file(store: ExperimentStore, table: str, seed: int = 0) -> Path:
    return store.path(table, make_config("fomaml", "paper", {"seed": seed}).run_id)


def replace_column(path: Path, name: str, values: list, dtype: pa.DataType | None = None) -> None:
    """Write ``path`` again with column ``name``'s first values replaced by ``values`` (of
    any type; the other rows keep theirs)."""
    table = pq.read_table(path)
    kept = table.column(name).to_pylist()[len(values) :]
    column = pa.array(values + kept, dtype)
    i = table.column_names.index(name)
    pq.write_table(table.set_column(i, pa.field(name, column.type), column), path)


def report_runs(cwd: Path) -> tuple[dict[str, int], list[str]]:
    """Completed runs per configuration in ``report --format json``, and the warnings."""
    proc = run_main("report", "-e", "exp", "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    counts = {}
    for row in json.loads(proc.stdout):
        key = row["solver"] + ("-tuned" if row.get("source") == "tuned" else "")
        counts[key] = row["runs"]
    warnings = [w for w in proc.stderr.splitlines() if w.startswith("raybench: warning: ")]
    return {k: v for k, v in counts.items() if k in EXPECTED_RUNS}, warnings


def checked(cwd: Path, *extra: str) -> tuple[int, dict[str, str]]:
    """``store check``'s exit code and its findings: relative path -> kind."""
    proc = run_main("store", "check", "-e", "exp", *extra, cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    found = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].endswith(":") and "/" in parts[1]:
            found[parts[1].rstrip(":")] = parts[0]
    return proc.returncode, found


def compare_row(cwd: Path, a: str, b: str) -> dict:
    proc = run_main("compare", "-e", "exp", a, b, "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    return row


@pytest.mark.parametrize("position", ["first", "last"])
def test_a_runs_file_with_a_text_accuracy_is_the_one_skipped(
    tmp_path: Path, store: ExperimentStore, position: str
) -> None:
    """Whether the bad file comes first by name (it used to be taken as the reference
    schema, hiding every good file) or last, it alone is skipped."""
    files = store.files("runs")
    bad = files[0] if position == "first" else files[-1]
    solver = pq.read_table(bad).column("solver")[0].as_py()
    replace_column(bad, "test_acc_mean", ["79.1"])
    counts, warnings = report_runs(tmp_path)
    expected = dict(EXPECTED_RUNS)
    if solver in ("maml", "fomaml", "finetune-full") and "tuned" not in bad.name:
        expected[solver] -= 1
    if solver != "reptile":
        assert sum(counts.values()) == sum(EXPECTED_RUNS.values()) - 1
    assert len(warnings) == 1 and str(bad.name) in warnings[0]
    assert "test_acc_mean" in warnings[0] and "declares" in warnings[0]
    code, found = checked(tmp_path)
    assert code == 1 and found == {f"runs/{bad.name}": "nonconforming"}
    code, _ = checked(tmp_path, "--fix")
    assert code == 0 and (store.root / "quarantine" / "runs" / bad.name).is_file()
    assert len(ExperimentStore(store.root).read("runs")) == len(files) - 1
    # with its row moved aside, the run's other files are orphans now, and only they
    code, found = checked(tmp_path)
    assert code in (0, 1) and set(found.values()) <= {"orphaned"}
    assert {Path(p).stem for p in found} <= {bad.stem}


def test_a_curves_file_of_another_type_leaves_every_other_curve_drawn(
    tmp_path: Path, store: ExperimentStore
) -> None:
    bad = fomaml_file(store, "curves")
    rows = pq.read_table(bad).num_rows
    replace_column(bad, "val_query_acc_post", ["high"] * rows)
    curves = store.read("curves")
    assert len(set(curves.column("run_id").to_pylist())) == 11  # 12 with curves, less one
    groups = run_groups(store.read("runs"), curves)
    labels = {g.label.split()[0] for g in groups}
    assert {"maml", "fomaml", "finetune-full"} <= labels  # every solver drawn
    figure = validation_figure(groups)
    texts = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert any(t.startswith("fomaml") for t in texts), texts
    assert checked(tmp_path)[1] == {f"curves/{bad.name}": "nonconforming"}


def test_a_tasks_file_of_another_type_leaves_compare_working(
    tmp_path: Path, store: ExperimentStore
) -> None:
    """The bad file first by name (it used to be the reference, hiding every other)."""
    maml = make_config("maml", "paper", {"seed": 0}).run_id.rsplit("-", 1)[1]
    before = compare_row(tmp_path, "fomaml", maml)
    bad = store.files("tasks")[0]
    assert bad.name.startswith("finetune-full-s0")
    replace_column(bad, "query_acc_post", ["x"] * N_TASKS)
    assert store.read("tasks").num_rows == 11 * N_TASKS
    after = compare_row(tmp_path, "fomaml", maml)
    assert after == before
    assert checked(tmp_path)[1] == {f"tasks/{bad.name}": "nonconforming"}


def doubled(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table]), path)


def test_repeated_rows_count_once_and_fix_keeps_each_row_once(
    tmp_path: Path, store: ExperimentStore
) -> None:
    """A runs file with its run twice, a tasks file and a curves file with every row twice:
    the report, the curves and compare are as before; ``--fix`` writes each file again with
    every row once and keeps the original in quarantine."""
    counts_before, _ = report_runs(tmp_path)
    compare_before = compare_row(tmp_path, "fomaml", "finetune-full")
    curves_before = store.read("curves").num_rows
    planted = [fomaml_file(store, t, seed=1) for t in ("runs", "tasks", "curves")]
    for path in planted:
        doubled(path)
    counts, warnings = report_runs(tmp_path)
    assert counts == counts_before == EXPECTED_RUNS
    assert sum("counted once" in w for w in warnings) >= 2  # runs and tasks read by report
    fresh = ExperimentStore(store.root, warn=lambda _m: None)
    assert fresh.read("curves").num_rows == curves_before
    assert fresh.read("runs").num_rows == 13
    row = compare_row(tmp_path, "fomaml", "finetune-full")
    assert (row["diff"], row["se"], row["tasks"]) == (
        compare_before["diff"],
        compare_before["se"],
        N_TASKS,
    )
    code, found = checked(tmp_path)
    relative = [str(p.relative_to(store.root)) for p in planted]
    assert code == 1 and found == dict.fromkeys(relative, "repeated")
    assert checked(tmp_path, "--fix")[0] == 0
    assert checked(tmp_path) == (0, {})
    for path, name in zip(planted, relative):
        assert pq.read_table(store.root / "quarantine" / name).num_rows == 2 * (
            pq.read_table(path).num_rows
        )
    assert report_runs(tmp_path) == (EXPECTED_RUNS, [])


IMPLAUSIBLE = [
    ("runs", "test_acc_mean", [1e308], None, "test_acc_mean"),
    ("runs", "test_acc_mean", [-3.0], None, "test_acc_mean"),
    ("runs", "final_val_acc", [float("inf")], None, "final_val_acc"),
    ("runs", "status", ["weird"], None, "status 'weird'"),
    ("runs", "status", [None], pa.string(), "status None"),
    ("runs", "seed", ["zero"], None, "'seed' holds text"),
    ("runs", "seed", [0.5], None, "'seed' holds number"),
    ("runs", "seed", [-1], pa.int64(), "seed -1"),
    ("runs", "inner_lr", [-0.4], None, "inner_lr -0.4"),
    ("runs", "wall_time_s", [-12.5], None, "wall_time_s"),
    ("runs", "ms_per_step", [float("-inf")], None, "ms_per_step"),
    ("curves", "step", [-2], pa.int64(), "step -2"),
    ("curves", "val_query_acc_post", [101.0], None, "val_query_acc_post 101.0"),
    ("tasks", "query_acc_post", [150.0], None, "query_acc_post 150.0"),
    ("tasks", "task", [-1], pa.int64(), "task -1"),
    ("runs", "solver", ["x/../../NAME"], None, "is a path or a hidden name"),
    ("runs", "experiment", [".hidden"], None, "is a path or a hidden name"),
    ("curves", "solver", ["a\\b"], None, "is a path or a hidden name"),
    ("runs", "source", ["tuned\x1b[2J"], None, "holds control characters"),
    ("tasks", "run_id", ["r" * 201], None, "longer than 200 characters"),
    # issue 46, case 6: a completed run without its accuracy, counts beyond a run's bounds
    ("runs", "test_acc_mean", [float("nan")], None, "test_acc_mean is NaN in a completed run"),
    ("runs", "final_val_acc", [float("nan")], None, "final_val_acc is NaN in a completed run"),
    ("runs", "steps_done", [10**12], pa.int64(), "steps_done 1000000000000 is beyond"),
    ("runs", "seed", [2**40], pa.int64(), "seed 1099511627776 is beyond"),
    ("curves", "step", [10**8], pa.int64(), "step 100000000 is beyond"),
    ("runs", "test_tasks_n", [10**9], pa.int64(), "test_tasks_n 1000000000 is beyond"),
]


@pytest.mark.parametrize(
    ("table", "column", "values", "dtype", "said"), IMPLAUSIBLE, ids=lambda v: str(v)[:20]
)
def test_an_implausible_value_is_reported_and_skipped(
    tmp_path: Path,
    store: ExperimentStore,
    table: str,
    column: str,
    values: list,
    dtype: pa.DataType | None,
    said: str,
) -> None:
    bad = fomaml_file(store, table)
    replace_column(bad, column, values, dtype)
    read = store.read(table)
    assert bad.stem not in set(read.column("run_id").to_pylist())
    counts, warnings = report_runs(tmp_path)
    if table == "runs":
        assert counts == {**EXPECTED_RUNS, "fomaml": 2}
    assert any(bad.name in w and said in w for w in warnings), warnings
    assert checked(tmp_path)[1] == {f"{table}/{bad.name}": "nonconforming"}


def test_a_lone_text_accuracy_is_not_read_as_null(tmp_path: Path) -> None:
    """A store of one run whose accuracy is text: named, not shown as a run without one."""
    store = comparison_store(tmp_path / "outputs" / "exp", seed=2)[0]
    keep = fomaml_file(store, "runs")
    for path in store.files("runs"):
        if path != keep:
            path.unlink()
    replace_column(keep, "test_acc_mean", ["79.1"])
    assert store.read("runs").num_rows == 0
    proc = run_main("report", "-e", "exp", "--format", "json", cwd=tmp_path)
    assert keep.name in proc.stderr and "test_acc_mean" in proc.stderr
    assert "79.1" not in proc.stdout


def test_store_check_refuses_a_folder_that_is_not_an_experiment(
    tmp_path: Path, store: ExperimentStore
) -> None:
    (store.root / "manifests").mkdir(exist_ok=True)
    for folder in (str(store.root / "manifests"), str(tmp_path / "outputs"), "/"):
        proc = run_main("store", "check", "-e", folder, cwd=tmp_path)
        one_line_error(proc, "not a raybench experiment")


def test_each_warnings_suggested_command_works_as_written(
    tmp_path: Path, store: ExperimentStore
) -> None:
    """The command a warning suggests, run word for word, repairs what it warned about."""
    import re

    replace_column(fomaml_file(store, "runs"), "status", ["weird"])
    doubled(fomaml_file(store, "tasks", seed=1))
    _, warnings = report_runs(tmp_path)
    suggested = {m for w in warnings for m in re.findall(r"`raybench ([^`]+)`", w)}
    assert suggested == {f"store check -e {store.root.relative_to(tmp_path)} --fix"}, warnings
    for command in suggested:
        proc = run_main(*command.split(), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    counts, warnings = report_runs(tmp_path)
    assert warnings == [] and counts == {**EXPECTED_RUNS, "fomaml": 2}


def test_links_out_of_the_experiment_are_neither_counted_nor_followed(
    tmp_path: Path, store: ExperimentStore
) -> None:
    """Issue 46, case 6: a run file linked in from another experiment is not this one's
    run; store check names it and --fix moves the link, never the file it names."""
    other, _ = comparison_store(tmp_path / "elsewhere" / "other", seed=5)
    extra = run_result_file(other)
    link = store.root / "runs" / "borrowed.parquet"
    link.symlink_to(extra)
    counts, warnings = report_runs(tmp_path)
    assert counts == EXPECTED_RUNS
    assert any("borrowed.parquet" in w and "link out of the experiment" in w for w in warnings)
    assert checked(tmp_path)[1] == {"runs/borrowed.parquet": "foreign"}
    assert checked(tmp_path, "--fix")[0] == 0
    assert (store.root / "quarantine" / "runs" / "borrowed.parquet").is_symlink()
    assert extra.is_file() and not link.exists()
    assert checked(tmp_path)[1] == {}


def test_a_linked_folder_is_not_read_and_fix_never_moves_through_one(
    tmp_path: Path, store: ExperimentStore
) -> None:
    """runs/ linked to another experiment's: none of its runs count; a quarantine/ linked
    out: --fix refuses in one line and moves nothing, here or there."""
    other, _ = comparison_store(tmp_path / "elsewhere" / "other", seed=5)
    theirs = sorted(p.name for p in (other.root / "runs").iterdir())
    quarantine = tmp_path / "elsewhere" / "q"
    quarantine.mkdir()
    (store.root / "quarantine").symlink_to(quarantine)
    replace_column(fomaml_file(store, "runs"), "seed", [-1], pa.int64())  # a finding to move
    refused = run_main("store", "check", "-e", "exp", "--fix", cwd=tmp_path)
    one_line_error(refused, "leads out of the experiment", "nothing was moved")
    assert fomaml_file(store, "runs").is_file() and not any(quarantine.iterdir())
    (store.root / "quarantine").unlink()
    for path in (store.root / "runs").iterdir():
        path.unlink()
    (store.root / "runs").rmdir()
    (store.root / "runs").symlink_to(other.root / "runs")
    assert store.read("runs").num_rows == 0
    found = run_main("store", "check", "-e", "exp", cwd=tmp_path)
    assert "runs" in found.stdout and "link out of the experiment" in found.stdout
    assert run_main("store", "check", "-e", "exp", "--fix", cwd=tmp_path).returncode == 0
    assert (store.root / "quarantine" / "runs").is_symlink()
    assert sorted(p.name for p in (other.root / "runs").iterdir()) == theirs


def run_result_file(other: ExperimentStore) -> Path:
    """A completed run of ``other`` that the experiment under test does not hold (fomaml,
    seed 7): were it read through a link, fomaml would count 4 runs."""
    import numpy as np
    from stores import run_result

    other.write_run(run_result("fomaml", 7, np.full(N_TASKS, 70.0)))
    return fomaml_file(other, "runs", seed=7)


def test_a_file_rewritten_in_place_is_read_anew_and_an_unchanged_one_is_not_parsed_again(
    store: ExperimentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are remembered by their bytes, not by what ``stat`` says: a rewrite in place
    that keeps the size, the inode and the modification time (a coarse clock's tick, or a
    restored copy) still gives the new rows, and reading the table again parses only the
    rewritten file."""
    import raybench.results.store as store_module

    path = fomaml_file(store, "runs")
    before = {r["run_id"]: r["test_acc_mean"] for r in store.read("runs").to_pylist()}
    parsed: list[str] = []
    parse = store_module._parse
    monkeypatch.setattr(
        store_module, "_parse", lambda name, data: parsed.append(name) or parse(name, data)
    )
    old = path.stat()
    flipped = before[path.stem] + 0.5  # another float: the file keeps its size
    replace_column(path, "test_acc_mean", [flipped])
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = path.stat()
    assert (new.st_size, new.st_ino, new.st_mtime_ns) == (old.st_size, old.st_ino, old.st_mtime_ns)
    after = {r["run_id"]: r["test_acc_mean"] for r in store.read("runs").to_pylist()}
    assert after == {**before, path.stem: flipped}
    assert parsed == ["runs"]  # only the rewritten file; the others were known
    store.read("runs")
    assert parsed == ["runs"]
