"""Reading a store needs no torch: ``raybench.load`` with every table, the comparison, the
replication and the report in every format, from Python and through ``raybench report``,
each in a fresh interpreter that fails if anything imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stores import comparison_store, write_scaling

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "benchmarks" / "results" / "published"
QUICK = REPO / "benchmarks" / "results" / "quick"
QUICK_OTHER_KERNELS = REPO / "benchmarks" / "results" / "quick-default-kernels"

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


def test_load_compare_report_and_the_cli_without_torch(tmp_path: Path) -> None:
    """In one fresh interpreter (a start-up costs seconds): every table of a fabricated
    store with a scaling study and of the published sweep, the comparison, the replication,
    the report in every format from Python, the agreement of the main job with its run on
    other kernels (also through ``raybench agree``), and ``raybench report`` through the console
    script's entry point in three."""
    store, _ = comparison_store(tmp_path / "exp")
    write_scaling(store)
    code = f"""
import json, raybench, raybench.api
from raybench.cli import main
shapes = {{}}
for root in ({str(store.root)!r}, {str(PUBLISHED)!r}):
    exp = raybench.load(root)
    for t in ("runs", "curves", "tasks", "summary", "trials", "bench", "scaling", "fidelity"):
        shapes[f"{{exp.name}}.{{t}}"] = getattr(exp, t).shape[0]
for fmt in ("markdown", "json", "csv", "latex", "rich"):
    assert raybench.api.report({str(store.root)!r}, fmt=fmt, width=120)
shapes["compare"] = raybench.compare({str(store.root)!r}, "fomaml", "finetune-full").shape[0]
shapes["replication"] = raybench.replication({str(PUBLISHED)!r}).shape[0]
shapes["agreement"] = len(raybench.agreement({str(QUICK)!r}, {str(QUICK_OTHER_KERNELS)!r}).rows)
try:
    main(["agree", "--published", {str(QUICK)!r}, "-e", {str(QUICK_OTHER_KERNELS)!r}])
except SystemExit as exc:
    assert not exc.code, exc.code
for fmt in ("rich", "markdown", "json"):
    try:
        main(["report", "-e", {str(PUBLISHED)!r}, "--format", fmt])
    except SystemExit as exc:
        assert not exc.code, exc.code
print(json.dumps(shapes))
"""
    proc = without_torch(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shapes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shapes["published.runs"] == 128 and shapes["published.trials"] == 160
    assert shapes["published.tasks"] > 0 and shapes["exp.scaling"] > 0
    assert shapes["compare"] >= 1 and shapes["replication"] == 24 and shapes["agreement"] == 8
    assert proc.stdout.count("maml") > 3 and "Traceback" not in proc.stderr
