"""The results store: one folder per experiment, one Parquet file per run and table.

``<out>/<experiment>/curves/<run_id>.parquet`` and ``tasks/<run_id>.parquet`` (the per-task
test results) are written first, then ``runs/<run_id>.parquet``: a run is finished exactly
when its ``runs`` file exists. Every file is written under a hidden temporary name and
renamed, so a killed process never leaves a half-written file, and parallel runs never
write the same file. The files are plain Parquet: pandas, polars and DuckDB read
``runs/*.parquet`` as they are.

Reading trusts nothing about the folder: a file that does not read, or is not a row of its
table (``foreign``), is skipped with one warning naming it; rows are identified by the ids
inside them (a run by its run id, never by its file name), so a copied file is counted once.
``raybench store check`` lists such files and moves them to ``quarantine/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raybench.atomic import atomic_write_bytes
from raybench.errors import ParameterError, RaybenchError
from raybench.results.conformance import (
    IDENTITY,
    cast_declared,
    name_problem,
    repeated_rows,
    type_problem,
    value_problem,
    without_rows,
)
from raybench.results.schema import curve_rows, run_row, task_rows
from raybench.results.versions import upgrade

if TYPE_CHECKING:
    from raybench.models import Params
    from raybench.train import RunResult

TABLES = ("runs", "curves", "tasks", "trials", "fidelity", "scaling")
# Tables whose folder alone makes a folder an experiment (the studies need no runs).
EXPERIMENT_TABLES = ("runs", "trials", "fidelity", "scaling", "bench")
# The column that identifies a file's unit (what one file holds; a file is canonically
# named ``<unit>.parquet``), the columns a file must have to be a row of the table, and
# columns that mark it as another table's file (a curves file copied into runs/, say).
# Minimal on purpose: stores written by older versions have few columns. A study file
# without a ``study_id`` is its own unit.
UNIT = {
    "runs": "run_id",
    "curves": "run_id",
    "tasks": "run_id",
    "trials": "solver",
    "fidelity": "study_id",
    "scaling": "study_id",
}
REQUIRED = {
    "runs": ("run_id",),
    "curves": ("run_id", "step"),
    "tasks": ("run_id", "task"),
    "trials": ("solver",),
    "fidelity": (),
    "scaling": (),
}
FOREIGN = {
    "runs": ("step", "task", "trial_id"),
    "curves": ("status", "task", "trial_id"),
    "tasks": ("status", "step", "trial_id"),
    "trials": ("run_id",),
    "fidelity": ("run_id", "trial_id"),
    "scaling": ("run_id", "trial_id"),
}
KEPT = ("completed", "diverged")  # a result to keep; ``failed`` runs are trained again

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"raybench: warning: {message}", file=sys.stderr, flush=True)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_table(path: Path, table: pa.Table) -> None:
    atomic_write_bytes(path, table_bytes(table))


def save_checkpoint(path: Path, params: Params) -> None:
    """Meta-parameters as a plain tensor dict, readable with ``weights_only=True``."""
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in params.items()}, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def load_checkpoint(path: Path) -> Params:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class StoredFile:
    """One ``*.parquet`` entry of a table folder, as read: its rows, or why it has none."""

    path: Path
    table: pa.Table | None  # None: unreadable or foreign
    problem: str = ""  # "unreadable: ..." or "foreign: ..."; "" when ``table`` is its rows


def _units(table_name: str, entry: StoredFile) -> list[str]:
    table = entry.table
    assert table is not None
    if UNIT[table_name] not in table.column_names:
        return [entry.path.stem]
    return list(dict.fromkeys(str(u) for u in table.column(UNIT[table_name]).to_pylist()))


def read_file(table_name: str, path: Path) -> StoredFile:
    """A table file, upgraded to today's meaning, or why it cannot be used. A report reads
    each table several times: a file whose bytes were read before is not parsed again."""
    if not path.is_file():
        return StoredFile(path, None, "unreadable: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return StoredFile(path, None, f"unreadable: {exc.strerror or type(exc).__name__}")
    key = (table_name, hashlib.sha256(data).digest())
    with _PARSED_LOCK:
        known = _PARSED.get(key)
    if known is None:
        known = _parse(table_name, data)
        with _PARSED_LOCK:
            _PARSED[key] = known
            while len(_PARSED) > _PARSED_MAX:  # the oldest first
                del _PARSED[next(iter(_PARSED))]
    return StoredFile(path, *known)


_PARSED: dict[tuple[str, bytes], tuple[pa.Table | None, str]] = {}  # by the file's bytes
_PARSED_MAX = 4096
_PARSED_LOCK = threading.Lock()


def _parse(table_name: str, data: bytes) -> tuple[pa.Table | None, str]:
    """A table file's bytes as today's rows (and ""), or None and why they are not."""
    try:  # the file alone (no dataset discovery), on this thread: a store is many small files
        with pq.ParquetFile(pa.BufferReader(data)) as parquet:
            table = parquet.read(use_threads=False)
    except (OSError, pa.ArrowException, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return None, f"unreadable: {reason}"
    missing = [c for c in REQUIRED[table_name] if c not in table.column_names]
    if missing:
        return None, f"foreign: no {missing[0]!r} column"
    other = [c for c in FOREIGN[table_name] if c in table.column_names]
    if other:
        return None, f"foreign: a {other[0]!r} column, as another table has"
    if UNIT[table_name] in table.column_names:
        unit = table.schema.field(UNIT[table_name]).type
        if not (pa.types.is_string(unit) or pa.types.is_large_string(unit)):
            return None, f"foreign: {UNIT[table_name]!r} is not text"
    if table.num_rows == 0 and table_name in ("runs", "trials"):
        return None, "foreign: no rows"
    try:  # today's meaning first: an older file may store what is declared otherwise now
        upgraded = upgrade(table, table_name)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        problem = type_problem(table_name, table)
        if problem:
            return None, f"nonconforming: {problem}"
        return None, f"unreadable: {' '.join(str(exc).split())[:200]}"
    problem = type_problem(table_name, upgraded)
    if problem:
        return None, f"nonconforming: {problem}"
    table = cast_declared(table_name, upgraded)
    problem = value_problem(table_name, table)
    if problem:
        return None, f"nonconforming: {problem}"
    return table, ""


@dataclass(frozen=True)
class TableScan:
    """A table folder: the files used (each with the units it contributes), the duplicates
    (every unit they hold is held by a file chosen before), and the unusable files."""

    used: list[tuple[StoredFile, list[str]]]
    duplicates: list[tuple[Path, dict[str, Path]]]  # file -> {unit: the file that holds it}
    bad: list[StoredFile]


def member(folder: Path, name: str) -> Path:
    """``folder / name`` for a file named after a run: a plain file name, never a path out
    of ``folder`` (a run id is made of checked names; this holds it to that)."""
    if name_problem(name) or name.startswith("."):
        raise RaybenchError(f"{name[:60]!r} is not a plain file name (in {folder})")
    return folder / name


def leaves(path: Path, root: Path) -> bool:
    """Whether ``path``, its links followed, is outside ``root``."""
    return not path.resolve().is_relative_to(root.resolve())


LINK_OUT = "foreign: a link out of the experiment"


def scan_table(table_name: str, folder: Path) -> TableScan:
    """Choose, for every unit (run, solver, study), the one file that holds it: the file
    named after it first, then the others by name. A link out of the experiment (the
    folder's parent), the folder's or a file's, is neither read nor counted."""
    root = folder.parent
    if folder.is_dir() and leaves(folder, root):
        return TableScan([], [], [StoredFile(folder, None, LINK_OUT)])
    entries = [
        StoredFile(p, None, LINK_OUT) if leaves(p, root) else read_file(table_name, p)
        for p in table_paths(folder)
    ]
    good = [e for e in entries if e.table is not None]
    bad = [e for e in entries if e.table is None]

    def order(entry: StoredFile) -> tuple[int, str]:
        named = entry.path.stem in _units(table_name, entry)
        return (0 if named else 1, entry.path.name)

    holder: dict[str, Path] = {}
    for entry in sorted(good, key=order):
        for unit in _units(table_name, entry):
            holder.setdefault(unit, entry.path)
    used, duplicates = [], []
    for entry in good:
        units = _units(table_name, entry)
        mine = [u for u in units if holder[u] == entry.path]
        if mine:
            used.append((entry, mine))
        if len(mine) < len(units):
            duplicates.append((entry.path, {u: holder[u] for u in units if u not in mine}))
    return TableScan(used, duplicates, bad)


def statuses(runs: pa.Table) -> list[tuple[str, str | None]]:
    """(run id, status) of each row of a runs table; a status an old file lacks is None."""
    if runs.num_rows == 0 or "run_id" not in runs.column_names:
        return []
    ids = runs.column("run_id").to_pylist()
    states = (
        runs.column("status").to_pylist() if "status" in runs.column_names else [None] * len(ids)
    )
    return list(zip(ids, states))


def table_paths(folder: Path) -> list[Path]:
    """Every ``*.parquet`` entry of a table folder but hidden ones (temporary writes)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


class ExperimentStore:
    """The folder of one experiment."""

    def __init__(self, root: Path, warn: Warn | None = None) -> None:
        self.root = Path(root)
        self._warn = warn or warn_stderr
        self._warned: set[str] = set()

    @property
    def name(self) -> str:
        return self.root.name

    def warn(self, message: str) -> None:
        """Each problem once per store object, however often the table is read."""
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def path(self, table: str, run_id: str) -> Path:
        return member(self.root / table, f"{run_id}.parquet")

    def progress_path(self, run_id: str) -> Path:
        """Where a run in progress keeps its training state (``raybench.resume``)."""
        return member(self.root / "progress", f"{run_id}.pt")

    def has_run(self, run_id: str) -> bool:
        return self.path("runs", run_id).exists()

    def is_finished(self, run_id: str) -> bool:
        """Stored as completed or diverged: a result to keep. A ``failed`` run (its worker
        died, say) is stored for the record but trained again on resume; so is a run whose
        file does not read."""
        path = self.path("runs", run_id)
        if not path.exists():
            return False
        entry = read_file("runs", path)
        if entry.table is None:
            self.warn(self._problem_line(entry, "runs") + "; the run is trained again")
            return False
        return any(rid == run_id and status in KEPT for rid, status in statuses(entry.table))

    def finished_ids(self) -> set[str]:
        """The run ids with a kept result, whatever their files are called."""
        runs = self.read("runs")
        if runs.num_rows == 0:
            return set()
        return {
            r["run_id"]
            for r in runs.select(["run_id", "status"]).to_pylist()
            if r["status"] in KEPT
        }

    def write_run(self, result: RunResult, *, source: str = "preset") -> Path:
        """Curves, checkpoint, then the run row (the commit point). The training state of a
        finished run goes then; a failed run keeps it, for its retry to continue from."""
        run_id = result.config.run_id
        checkpoint = None
        if result.params is not None:
            ckpt = member(self.root / "checkpoints", f"{run_id}.pt")
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
        if result.status in KEPT:
            self.progress_path(run_id).unlink(missing_ok=True)
        return path

    def write_manifest(self, kind: str, plan: dict) -> None:
        """What a command was asked to do, so ``--resume`` can do the rest of it."""
        text = json.dumps(plan, indent=2, sort_keys=True)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.root / f"{kind}.json", text.encode())

    def read_manifest(self, kind: str) -> dict:
        path = self.root / f"{kind}.json"
        if not path.is_file():
            raise RaybenchError(f"nothing to resume: {path} does not exist")
        return read_json(path)

    def files(self, table: str) -> list[Path]:
        return table_paths(self.root / table)

    def read(self, table: str) -> pa.Table:
        """All rows of one table of the experiment, across schema versions: each file read
        with today's meaning (``raybench.results.versions``), the union of the files'
        columns, missing values as nulls. Unreadable, foreign and duplicate files are
        skipped, each with one warning."""
        if table not in TABLES:
            raise ValueError(table)
        scan = scan_table(table, self.root / table)
        for entry in scan.bad:
            self.warn(self._problem_line(entry, table))
        for path, held in scan.duplicates:
            unit, other = next(iter(held.items()))
            more = f" and {len(held) - 1} more" if len(held) > 1 else ""
            self.warn(
                f"{path} repeats {UNIT[table].replace('_', ' ')} {unit}{more} (also in "
                f"{other.name}): counted once. {self._fix_hint()}"
            )
        parts: list[pa.Table] = []
        for entry, units in scan.used:
            rows = entry.table
            assert rows is not None
            if len(units) < len(_units(table, entry)):
                keep = pa.array(units, rows.schema.field(UNIT[table]).type)
                rows = rows.filter(pc.is_in(rows.column(UNIT[table]), value_set=keep))
            repeated = repeated_rows(table, rows)
            if repeated:
                self.warn(
                    f"{entry.path} repeats {len(repeated)} row(s) of the same "
                    f"{' and '.join(IDENTITY[table]).replace('_', ' ')}: counted once. "
                    f"`raybench store check -e {self.root} --fix` rewrites it without them"
                )
                rows = without_rows(rows, repeated)
            parts.append(rows)
        return self._concat(parts, [e.path for e, _ in scan.used], table)

    def _concat(self, parts: list[pa.Table], paths: list[Path], table: str) -> pa.Table:
        if not parts:
            return pa.table({})
        try:
            return pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowException, ValueError):
            pass
        kept = [parts[0]]
        for part, path in zip(parts[1:], paths[1:]):
            try:
                pa.concat_tables([*kept, part], promote_options="permissive")
            except (pa.ArrowException, ValueError):
                self.warn(f"{path}: columns of other types than the rest of {table}/, skipped")
                continue
            kept.append(part)
        return pa.concat_tables(kept, promote_options="permissive")

    def runs_without(self, table: str, runs: pa.Table) -> list[str]:
        """Run ids of kept runs with no rows in ``table`` (a curves or tasks file lost)."""
        if runs.num_rows == 0:
            return []
        rows = self.read(table)
        have = set(rows.column("run_id").to_pylist()) if rows.num_rows else set()
        missing = []
        for row in runs.to_pylist():
            if row.get("status") not in KEPT or row["run_id"] in have:
                continue
            tested = row.get("test_tasks_n") and (row.get("schema_version") or 1) >= 2
            if table == "tasks" and not tested:
                continue  # never tested, or from before the tasks table existed
            missing.append(row["run_id"])
        return sorted(missing)

    def _problem_line(self, entry: StoredFile, table: str) -> str:
        kind, _, reason = entry.problem.partition(": ")
        what = {
            "unreadable": "unreadable",
            "nonconforming": f"not as raybench declares its {table} files",
        }.get(kind, f"not a {table} file")
        return f"skipped {entry.path} ({what}: {reason}). {self._fix_hint()}"

    def _fix_hint(self) -> str:
        return f"`raybench store check -e {self.root} --fix` moves it to quarantine/"


def read_json(path: Path) -> dict:
    """A JSON object written by raybench; a damaged one is a one-line error naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RaybenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # also UnicodeDecodeError
        reason = " ".join(str(exc).split())[:120]
        raise RaybenchError(
            f"{path} is damaged ({reason}); move it away, e.g. with "
            f"`raybench store check -e {experiment_of(path)} --fix`"
        ) from None
    if not isinstance(data, dict):
        raise RaybenchError(f"{path} is damaged (not a JSON object); move it away")
    return data


# What only an experiment folder holds, besides its tables: a run's training state, the
# plans of its commands, a sweep's search, files already moved aside.
STORE_MARKS = (
    "progress", "checkpoints", "manifests", "quarantine", "locks", "run.json", "sweep.json",
    "protocol.json", "replication.json", "optuna.db", "tune", "best", "plots",
    "summary.parquet", "study.parquet",
)  # fmt: skip
# The operating system's own folders: an experiment is never created in or under them.
SYSTEM_FOLDERS = tuple(
    Path(p) for p in ("/etc", "/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/boot")
)
SYSTEM_ROOTS = tuple(Path(p) for p in ("/", "/var", "/opt", "/srv", "/home", "/root", "/tmp"))


def is_experiment(folder: Path) -> bool:
    """Whether ``folder`` is a raybench experiment (a table folder or one of its marks)."""
    return folder.is_dir() and any(
        (folder / name).exists() for name in (*TABLES, *EXPERIMENT_TABLES, *STORE_MARKS)
    )


def claim_folder(folder: Path, force: bool = False) -> None:
    """Refuse, in one line, to create an experiment in a system folder or in a non-empty
    folder that is not a raybench experiment (``force`` insists); an empty, new or
    existing experiment folder is fine."""
    if force:
        return
    resolved = Path(folder).resolve()
    system = resolved in SYSTEM_ROOTS or any(
        resolved == f or f in resolved.parents for f in SYSTEM_FOLDERS
    )
    if system:
        raise ParameterError(
            "{folder} is a system folder: an experiment is not created there (choose another "
            "{experiment} or {out}, or {force})",
            folder=folder,
        )
    if resolved.is_dir() and any(resolved.iterdir()) and not is_experiment(resolved):
        raise ParameterError(
            "{folder} holds files and is not a raybench experiment: choose a new or empty "
            "folder (or {force} to write into it)",
            folder=folder,
        )


def experiment_of(path: Path) -> Path:
    """The experiment a file of the store is in (its own folder when none encloses it)."""
    return next((p for p in Path(path).parents if is_experiment(p)), Path(path).parent)


def open_experiment(name_or_path: str, out: Path, warn: Warn | None = None) -> ExperimentStore:
    """An experiment by name under ``out`` or by folder path; a clear error otherwise."""
    candidates = [Path(name_or_path), out / name_or_path]
    for path in candidates:
        if any((path / table).is_dir() for table in EXPERIMENT_TABLES):
            return ExperimentStore(path, warn)
    existing = (
        sorted(p.name for p in out.glob("*") if any((p / t).is_dir() for t in EXPERIMENT_TABLES))
        if out.is_dir()
        else []
    )
    hint = f"; experiments in {out}: {', '.join(existing)}" if existing else f"; {out} has none"
    tables = "/".join(EXPERIMENT_TABLES)
    raise RaybenchError(f"no experiment {name_or_path!r} (no {tables} folder there){hint}")


# Kernel file systems: nothing written there is a file.
PSEUDO_FILE_SYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
# Folders of an experiment that must be folders if they exist.
STORE_FOLDERS = (*TABLES, "bench", "checkpoints", "progress", "manifests", "locks")


def ensure_writable(folder: Path) -> None:
    """Fail now, in one line, if results could not be written under ``folder``: the
    nearest existing ancestor must be a writable folder, not on a kernel file system, and
    no file may sit where the store keeps a folder. Creates nothing."""
    resolved = Path(folder).resolve()
    for pseudo in PSEUDO_FILE_SYSTEMS:
        if resolved == pseudo or pseudo in resolved.parents:
            raise ParameterError(
                "cannot write results under {folder}: {pseudo} is a kernel file system; "
                "choose another {out} or {experiment}",
                folder=folder,
                pseudo=pseudo,
            )
    for name in STORE_FOLDERS:
        inner = Path(folder) / name
        if inner.exists() and not inner.is_dir():
            raise RaybenchError(
                f"cannot write results under {folder}: {inner} is a file where the store "
                f"keeps its {name}/ folder; move it away"
            )
    probe = Path(folder).absolute()
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ParameterError(
            "cannot write results under {folder}: {probe} is a file, not a folder; "
            "choose another {out}",
            folder=folder,
            probe=probe,
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ParameterError(
            "cannot write results under {folder}: {probe} is not writable; "
            "choose another {out} or fix its permissions",
            folder=folder,
            probe=probe,
        )
