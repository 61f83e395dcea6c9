"""The results store: one folder per experiment, one Parquet file per run and table.

``<out>/<experiment>/curves/<run_id>.parquet`` and ``tasks/<run_id>.parquet`` (the per-task
test results) are written first, then ``runs/<run_id>.parquet``: a run is finished exactly
when its ``runs`` file exists. Every
file is written under a hidden temporary name and renamed, so a killed process never leaves
a half-written file, and parallel runs never write the same file. The files are plain
Parquet: pandas, polars and DuckDB read ``runs/*.parquet`` as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raybench.atomic import atomic_write
from raybench.errors import RaybenchError
from raybench.models import Params
from raybench.results.schema import curve_rows, run_row, task_rows
from raybench.results.versions import upgrade
from raybench.train import RunResult

TABLES = ("runs", "curves", "tasks", "trials", "fidelity", "scaling")
# Tables whose folder alone makes a folder an experiment (the studies need no runs).
EXPERIMENT_TABLES = ("runs", "trials", "fidelity", "scaling", "bench")


def write_table(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def save_checkpoint(path: Path, params: Params) -> None:
    """Meta-parameters as a plain tensor dict, readable with ``weights_only=True``."""
    atomic_write(
        path, lambda tmp: torch.save({k: v.detach().cpu() for k, v in params.items()}, tmp)
    )


def load_checkpoint(path: Path) -> Params:
    return torch.load(path, map_location="cpu", weights_only=True)


class ExperimentStore:
    """The folder of one experiment."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return self.root.name

    def path(self, table: str, run_id: str) -> Path:
        return self.root / table / f"{run_id}.parquet"

    def progress_path(self, run_id: str) -> Path:
        """Where a run in progress keeps its training state (``raybench.resume``)."""
        return self.root / "progress" / f"{run_id}.pt"

    def has_run(self, run_id: str) -> bool:
        return self.path("runs", run_id).exists()

    def is_finished(self, run_id: str) -> bool:
        """Stored as completed or diverged: a result to keep. A ``failed`` run (its worker
        died, say) is stored for the record but trained again on resume."""
        path = self.path("runs", run_id)
        if not path.exists():
            return False
        status = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        return bool(status) and status[0] in ("completed", "diverged")

    def write_run(self, result: RunResult, *, source: str = "preset") -> Path:
        """Curves, checkpoint, then the run row (the commit point). The training state of a
        finished run goes then; a failed run keeps it, for its retry to continue from."""
        run_id = result.config.run_id
        checkpoint = None
        if result.params is not None:
            ckpt = self.root / "checkpoints" / f"{run_id}.pt"
            save_checkpoint(ckpt, result.params)
            checkpoint = str(ckpt.relative_to(self.root))
        write_table(self.path("curves", run_id), curve_rows(result, self.name))
        tasks = task_rows(result, self.name)
        if tasks is not None:
            write_table(self.path("tasks", run_id), tasks)
        else:  # a rerun that was not tested must not leave an earlier run's tasks behind
            self.path("tasks", run_id).unlink(missing_ok=True)
        row = run_row(result, self.name, source=source, checkpoint=checkpoint)
        path = self.path("runs", run_id)
        write_table(path, row)
        if result.status in ("completed", "diverged"):
            self.progress_path(run_id).unlink(missing_ok=True)
        return path

    def write_manifest(self, kind: str, plan: dict) -> None:
        """What a command was asked to do, so ``--resume`` can do the rest of it."""
        text = json.dumps(plan, indent=2, sort_keys=True)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / f"{kind}.json", lambda tmp: tmp.write_text(text))

    def read_manifest(self, kind: str) -> dict:
        path = self.root / f"{kind}.json"
        if not path.is_file():
            raise RaybenchError(f"nothing to resume: {path} does not exist")
        return json.loads(path.read_text())

    def files(self, table: str) -> list[Path]:
        folder = self.root / table
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))

    def read(self, table: str) -> pa.Table:
        """All rows of one table of the experiment, across schema versions: each file read
        with today's meaning (``raybench.results.versions``), the union of the files'
        columns, missing values as nulls."""
        if table not in TABLES:
            raise ValueError(table)
        files = self.files(table)
        if not files:
            return pa.table({})
        parts = [upgrade(pq.read_table(f)) for f in files]
        return pa.concat_tables(parts, promote_options="permissive")


def open_experiment(name_or_path: str, out: Path) -> ExperimentStore:
    """An experiment by name under ``out`` or by folder path; a clear error otherwise."""
    candidates = [Path(name_or_path), out / name_or_path]
    for path in candidates:
        if any((path / table).is_dir() for table in EXPERIMENT_TABLES):
            return ExperimentStore(path)
    existing = (
        sorted(p.name for p in out.glob("*") if any((p / t).is_dir() for t in EXPERIMENT_TABLES))
        if out.is_dir()
        else []
    )
    hint = f"; experiments in {out}: {', '.join(existing)}" if existing else f"; {out} has none"
    tables = "/".join(EXPERIMENT_TABLES)
    raise RaybenchError(f"no experiment {name_or_path!r} (no {tables} folder there){hint}")
