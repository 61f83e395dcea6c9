"""Where raybench writes: every path error is one line and exit code 2 before any training,
and an experiment is created only in a new, empty or raybench folder (``--force`` insists).
Every case stops before training, so each runs in this process (``run_main``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import one_line_error, run_main
from stores import comparison_store

SMOKE = ("--solvers", "fomaml", "--preset", "smoke", "--steps", "2", "--backend", "inline")
# Each command that creates an experiment, as far as its -e: it stops at the folder.
CREATING = [
    ("run", *SMOKE),
    ("sweep", "--solvers", "fomaml", "--preset", "smoke", "--trials", "2", "--steps", "2"),
    ("sensitivity", "--solver", "fomaml", "--param", "inner_lr", "--values", "0.1", "--preset",
     "smoke"),
    ("bench", "--solvers", "fomaml", "--preset", "smoke", "--timed-steps", "2"),
    ("scaling", "--preset", "smoke", "--timed-steps", "2"),
    ("fidelity", "--solvers", "fomaml", "--preset", "smoke"),
]  # fmt: skip


@pytest.mark.parametrize("command", CREATING, ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("where", "said"),
    [
        (("-e", "/proc/raybench-x"), "kernel file system"),
        (("--out", "/sys/raybench"), "kernel file system"),
        (("-e", "/etc/raybench-x"), "system folder"),
        (("-e", "/usr"), "system folder"),
    ],
    ids=["proc", "sys", "etc", "usr"],
)
def test_system_and_kernel_folders_are_refused_in_one_line(
    tmp_path: Path, command: tuple[str, ...], where: tuple[str, ...], said: str
) -> None:
    proc = run_main(*command, *where, cwd=tmp_path)
    one_line_error(proc, said)
    assert not Path("/etc/raybench-x").exists()


def test_a_foreign_folder_is_refused_and_force_insists(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("mine")
    refused = run_main("run", *SMOKE, "-e", str(mine), cwd=tmp_path)
    one_line_error(refused, "not a raybench experiment", "--force")
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    forced = run_main("run", *SMOKE, "-e", str(mine), "--force", "--no-report", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (mine / "thesis.txt").read_text() == "mine" and len(list((mine / "runs").iterdir()))
    again = run_main("run", *SMOKE, "-e", str(mine), "--no-report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # a raybench experiment now: no --force


def test_an_empty_folder_and_an_existing_experiment_are_taken(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    comparison_store(tmp_path / "outputs" / "exp")
    for name in (str(tmp_path / "empty"), "exp"):
        proc = run_main("run", *SMOKE, "--device", "cuda", "-e", name, cwd=tmp_path)
        one_line_error(proc, "cuda")  # past the folder checks, stopped at the device


def test_a_file_where_the_store_keeps_a_folder_is_named_before_training(tmp_path: Path) -> None:
    store, _ = comparison_store(tmp_path / "outputs" / "exp")
    runs = sorted((store.root / "runs").iterdir())
    for path in runs:
        path.unlink()
    (store.root / "runs").rmdir()
    (store.root / "runs").write_text("not a folder")
    proc = run_main("run", *SMOKE, "-e", "exp", cwd=tmp_path)
    one_line_error(proc, "runs", "is a file where the store keeps its runs/ folder")
    assert not (store.root / "progress").exists()  # nothing trained
    checked = run_main("store", "check", "-e", "exp", cwd=tmp_path)
    assert checked.returncode == 1
    listed = [line.split()[:2] for line in checked.stdout.splitlines() if line.startswith("  ")]
    assert listed == [["foreign", "runs:"]]  # no run's curves or tasks called orphans


def test_figures_into_a_file_is_one_line(tmp_path: Path) -> None:
    comparison_store(tmp_path / "outputs" / "exp")
    target = tmp_path / "figures.png"
    target.write_bytes(b"keep")
    proc = run_main("plot", "-e", "exp", "--dir", str(target), cwd=tmp_path)
    one_line_error(proc, "figures.png", "not a folder")
    assert target.read_bytes() == b"keep"


def test_an_output_file_the_system_refuses_is_one_line(tmp_path: Path) -> None:
    comparison_store(tmp_path / "outputs" / "exp")
    proc = run_main(
        "report", "-e", "exp", "--format", "json", "-o", "/proc/raybench/x.json", cwd=tmp_path
    )
    one_line_error(proc, "/proc/raybench/x.json")
    fine = run_main("report", "-e", "exp", "--format", "json", cwd=tmp_path)
    assert fine.returncode == 0 and json.loads(fine.stdout)


def test_replicate_into_a_system_or_foreign_folder_is_refused(tmp_path: Path) -> None:
    from stores import sweep_store

    sweep_store(tmp_path / "outputs" / "pub", seeds=range(2))
    proc = run_main("replicate", "-e", "pub", "--into", "/etc/raybench-rep", cwd=tmp_path)
    one_line_error(proc, "system folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("a")
    proc = run_main("replicate", "-e", "pub", "--into", str(tmp_path / "mine"), cwd=tmp_path)
    one_line_error(proc, "not a raybench experiment")
