"""Which training code made a run (raybench.code_version): the fingerprint follows the
training path's bytes and nothing else, every run stores it, and the report warns, through
the real CLI, when the installed training code differs from the code that made the runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from raybench.code_version import PACKAGE, code_fingerprint, fingerprint_of, version_warning


def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package (under ``tmp_path/raybench``) to edit."""
    root = tmp_path / "raybench"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_fingerprint_follows_the_training_path_only(tmp_path: Path) -> None:
    root = package_copy(tmp_path)
    assert fingerprint_of(root) == code_fingerprint()
    (tmp_path / "README.md").write_text("a README edit\n")
    for outside in ("report/tables.py", "cli/reports.py", "measurements/bench.py", "__init__.py"):
        with (root / outside).open("a") as f:
            f.write("\n# an edit off the training path\n")
    assert fingerprint_of(root) == code_fingerprint()
    for inside in ("solvers/maml.py", "models.py", "train.py", "data/omniglot.py"):
        copy = package_copy(tmp_path / inside.replace("/", "_"))
        with (copy / inside).open("a") as f:
            f.write("\n# a change on the training path\n")
        assert fingerprint_of(copy) != code_fingerprint(), inside
    (root / "solvers" / "maml.py").rename(root / "solvers" / "maml2.py")  # names count too
    assert fingerprint_of(root) != code_fingerprint()


def test_version_warning_counts_runs_by_code() -> None:
    assert version_warning(["aaa", "aaa"], "aaa") is None
    assert version_warning([None, None], "aaa") is None  # older runs alone: unknown, not other
    assert version_warning([], "aaa") is None
    line = version_warning(["bbb", "aaa", "bbb", None], "aaa")
    assert line is not None and "\n" not in line
    assert line.startswith("2 of 4 runs")
    assert "2 by bbb" in line and "1 by aaa (installed)" in line and "1 unrecorded" in line
    one_other = version_warning(["ccc", "ccc"], "aaa")
    assert one_other is not None and "2 of 2 runs" in one_other and "2 by ccc" in one_other


RAYBENCH_MODULE = [sys.executable, "-m", "raybench"]


def run(args: list[str], cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if pythonpath is not None:  # import this copy of the package instead of the installed one
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [*RAYBENCH_MODULE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_report_warns_when_training_code_changed(omniglot, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    trained = run(
        ["run", "--solvers", "fomaml", "--preset", "smoke", "--seeds", "1", "--backend",
         "inline", "--no-report", "-e", "cv"], cwd=work,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    (row,) = ds.dataset(work / "outputs" / "cv" / "runs").to_table().to_pylist()
    assert row["code_fingerprint"] == code_fingerprint()

    same = run(["report", "-e", "cv"], cwd=work)
    assert same.returncode == 0, same.stderr
    assert "training code" not in same.stderr

    edited = tmp_path / "edited"
    solver = package_copy(edited) / "solvers" / "fomaml.py"
    solver.write_text(solver.read_text() + "\n# changed after the runs were made\n")
    other = run(["report", "-e", "cv"], cwd=work, pythonpath=edited)
    assert other.returncode == 0, other.stderr
    assert "1 of 1 runs were made by training code other than the installed one" in other.stderr
    assert f"1 by {code_fingerprint()}" in other.stderr

    docs_only = tmp_path / "docs_only"
    package_copy(docs_only)
    (docs_only / "README.md").write_text("edited\n")
    unchanged = run(["report", "-e", "cv"], cwd=work, pythonpath=docs_only)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "training code" not in unchanged.stderr


def test_code_declared_to_train_as_another_counts_as_that_code(monkeypatch) -> None:
    """Runs of a fingerprint declared equivalent (code that moved declarations and trains
    bitwise as before) are the installed code's runs; a chain of such declarations too."""
    from raybench import code_version

    monkeypatch.setattr(code_version, "EQUIVALENT", {"new": "mid", "mid": "old", "x": "x"})
    assert code_version.trains_as("new") == "old" and code_version.trains_as("x") == "x"
    assert version_warning(["old", "mid", "new"], "new") is None
    line = version_warning(["old", "zzz"], "new")
    assert line is not None and line.startswith("1 of 2 runs")  # only zzz is other code
    assert "1 by old (trains as the installed)" in line and "1 by zzz" in line


def test_every_declared_equivalence_ends_at_recorded_code() -> None:
    """Each declaration points at other code (never itself), and the installed code
    trains as the code that recorded the golden numbers it is tested against: a change to
    the training path re-records them (a training change) or declares itself equivalent
    (a move, with the golden test passing bitwise as its evidence)."""
    import json

    from raybench.code_version import EQUIVALENT, trains_as

    assert all(new != old for new, old in EQUIVALENT.items())
    golden = json.loads((Path(__file__).parent / "golden" / "smoke-runs.json").read_text())
    assert trains_as(code_fingerprint()) == trains_as(golden["code_fingerprint"]), (
        f"the training code ({code_fingerprint()}) is not the code that recorded "
        f"tests/golden/smoke-runs.json ({golden['code_fingerprint']}) nor declared to train "
        "as it: see raybench.code_version.EQUIVALENT and tests/test_golden_runs.py"
    )
