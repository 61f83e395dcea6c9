"""Reading a store needs no torch: ``raybench.load`` with every table, the comparison, the
replication and the report in every format, from Python and through ``raybench report``,
each in a fresh interpreter that fails if anything imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from stores import comparison_store, write_scaling

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "benchmarks" / "results" / "published"

# Any import of torch fails in the child, and its name is printed where it was tried.
NO_TORCH = """
import sys, traceback
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            traceback.print_stack()
            raise ImportError("torch imported on a read path")
sys.meta_path.insert(0, NoTorch())
"""


def without_torch(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + code], cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_the_blocker_blocks(tmp_path: Path) -> None:
    proc = without_torch("import raybench.train", tmp_path)
    assert proc.returncode != 0 and "torch imported on a read path" in proc.stderr


def test_load_compare_and_report_from_python_without_torch(tmp_path: Path) -> None:
    store, _ = comparison_store(tmp_path / "exp")
    write_scaling(store)
    code = f"""
import json, raybench, raybench.api
shapes = {{}}
for root in ({str(store.root)!r}, {str(PUBLISHED)!r}):
    exp = raybench.load(root)
    for t in ("runs", "curves", "tasks", "summary", "trials", "bench", "scaling", "fidelity"):
        shapes[f"{{exp.name}}.{{t}}"] = getattr(exp, t).shape[0]
    for fmt in ("markdown", "json", "csv", "latex", "rich"):
        assert raybench.api.report(root, fmt=fmt, width=120)
shapes["compare"] = raybench.compare({str(store.root)!r}, "fomaml", "finetune-full").shape[0]
shapes["replication"] = raybench.replication({str(PUBLISHED)!r}).shape[0]
print(json.dumps(shapes))
"""
    proc = without_torch(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shapes = json.loads(proc.stdout)
    assert shapes["published.runs"] == 128 and shapes["published.trials"] == 160
    assert shapes["published.tasks"] > 0 and shapes["exp.scaling"] > 0
    assert shapes["compare"] >= 1 and shapes["replication"] == 24


@pytest.mark.parametrize("fmt", ["rich", "markdown", "json"])
def test_raybench_report_without_torch(tmp_path: Path, fmt: str) -> None:
    """The console script's entry point, as ``raybench report`` runs it."""
    code = f"""
from raybench.cli import main
main(["report", "-e", {str(PUBLISHED)!r}, "--format", {fmt!r}])
"""
    proc = without_torch(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "maml" in proc.stdout and "Traceback" not in proc.stderr
