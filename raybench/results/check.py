"""What in an experiment folder is not a sound part of its store, and moving it aside.

``raybench store check`` finds: unreadable files (a truncated, empty or junk Parquet file,
a folder named ``x.parquet``, a damaged plan), foreign files (readable, but not a row of
the table they sit in: a curves file copied into ``runs/``), nonconforming files (a column
of another type than raybench declares, an implausible value:
``raybench.results.conformance``), files with repeated rows (one run's row twice),
duplicates (every row they hold is held by another file: a copy under another name),
orphans (a training state of a run that is finished or is not its file's run, curves,
per-task results or a checkpoint without a run) and leftovers (the temporary file of a
write that was killed), and links out of the experiment (a file or a folder: neither read
nor followed). Readers already skip all of these and count repeated rows once;
``--fix`` moves them to ``<experiment>/quarantine/`` (never deletes), keeping their path
inside the experiment, and writes a file with repeated rows again with each row once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from raybench.errors import RaybenchError
from raybench.results.conformance import IDENTITY, repeated_rows, without_rows
from raybench.results.locks import LOCKS, holder, is_locked
from raybench.results.store import (
    KEPT,
    LINK_OUT,
    ExperimentStore,
    leaves,
    scan_table,
    statuses,
    write_table,
)

QUARANTINE = "quarantine"
PER_RUN = ("curves", "tasks")


@dataclass(frozen=True)
class Finding:
    kind: str  # unreadable | foreign | nonconforming | repeated | duplicate | orphaned | leftover
    path: Path
    why: str


def check_store(store: ExperimentStore) -> list[Finding]:
    """Every problem file of one experiment, in a stable order."""
    root = store.root
    findings: list[Finding] = []
    runs = set()
    kept = set()
    if (root / "runs").exists() and not (root / "runs").is_dir():
        # no run can be known: nothing is called an orphan, nothing of a run moved
        return [Finding("foreign", root / "runs", "a file where the runs/ folder belongs")]
    tables = ("runs", *PER_RUN, "trials", "fidelity", "scaling")
    out = {p.name for p in root.iterdir() if p.is_symlink() and leaves(p, root)}
    for name in sorted(out - set(tables)):  # the tables' own scans find theirs
        findings.append(Finding("foreign", root / name, LINK_OUT.partition(": ")[2]))
    for table in tables:
        scan = scan_table(table, root / table)
        for entry in scan.bad:
            kind, _, why = entry.problem.partition(": ")
            findings.append(Finding(kind, entry.path, why))
            if table == "runs":  # its run exists, unread: its curves are not orphans
                runs.add(entry.path.stem)
        used = {entry.path for entry, _ in scan.used}
        for path, held in scan.duplicates:
            if path in used:  # some of its rows are held nowhere else: keep it
                continue
            unit, other = next(iter(held.items()))
            findings.append(Finding("duplicate", path, f"{unit} is also in {other.name}"))
        for entry, _ in scan.used:
            assert entry.table is not None
            repeated = repeated_rows(table, entry.table)
            if repeated:
                key = " and ".join(IDENTITY[table]).replace("_", " ")
                why = f"{len(repeated)} row(s) repeat the {key} of an earlier row"
                findings.append(Finding("repeated", entry.path, why))
        if table == "runs":
            for entry, units in scan.used:
                runs.update(units)
                assert entry.table is not None
                for run_id, status in statuses(entry.table):
                    if status in KEPT and run_id in units:
                        kept.add(run_id)
        elif table in PER_RUN:
            for entry, units in scan.used:
                lost = [u for u in units if u not in runs]
                if lost:
                    findings.append(Finding("orphaned", entry.path, f"no run {lost[0]} in runs/"))
    findings += _states(root, kept) if "progress" not in out else []
    checkpoints = root / "checkpoints"
    for path in (
        sorted(checkpoints.glob("*.pt"))
        if checkpoints.is_dir() and "checkpoints" not in out
        else []
    ):
        if not path.name.startswith(".") and path.stem not in runs:
            findings.append(Finding("orphaned", path, f"no run {path.stem} in runs/"))
    findings += _plans(root)
    findings += _leftovers(root)
    return findings


def _states(root: Path, kept: set[str]) -> list[Finding]:
    from raybench.resume import saved_states

    states, unusable = saved_states(root / "progress")
    found = [Finding("unreadable", path, why) for path, why in unusable]
    for state in states:
        if state.run_id in kept:
            found.append(Finding("orphaned", state.path, "its run is finished and stored"))
    return found


def _plans(root: Path) -> list[Finding]:
    found = []
    candidates = [
        root / "run.json",
        root / "sweep.json",
        *sorted((root / "manifests").glob("*.json")),
    ]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            found.append(Finding("unreadable", path, " ".join(str(exc).split())[:120]))
            continue
        if not isinstance(body, dict):
            found.append(Finding("unreadable", path, "not a JSON object"))
    return found


def _leftovers(root: Path) -> list[Finding]:
    found = []
    for folder in [
        root,
        *(
            p
            for p in root.iterdir()
            if p.is_dir() and not p.is_symlink() and p.name not in (QUARANTINE, LOCKS)
        ),
    ]:
        for path in sorted(folder.glob(".tmp-*")):
            found.append(Finding("leftover", path, "the temporary file of an interrupted write"))
    return found


def busy(store: ExperimentStore) -> str | None:
    """Who is writing the experiment now (a lock is held), or None."""
    folder = store.root / LOCKS
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        if is_locked(path):
            return f"{holder(path)} (run {path.stem})"
    return None


def quarantine(store: ExperimentStore, findings: list[Finding]) -> list[tuple[Path, Path]]:
    """Move each finding under ``quarantine/`` at its path in the experiment; a name
    already taken there gets a numbered suffix. A file with repeated rows is moved too,
    and written again in its place with each row once: its runs stay in the store.
    Returns (from, to) pairs."""
    for finding in findings:  # every move checked before any is made
        into = store.root / QUARANTINE / finding.path.relative_to(store.root)
        for folder in (finding.path.parent, into.parent):
            if leaves(folder, store.root):
                raise RaybenchError(
                    f"{folder} leads out of the experiment (a link): nothing was moved; "
                    "remove the link first"
                )
    moved = []
    for finding in findings:
        relative = finding.path.relative_to(store.root)
        target = store.root / QUARANTINE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while target.exists():
            target = target.with_name(f"{relative.name}.{n}")
            n += 1
        if finding.kind == "repeated":
            table = pq.read_table(finding.path)
            once = without_rows(table, repeated_rows(relative.parts[0], table))
            os.rename(finding.path, target)
            write_table(finding.path, once)
        else:
            os.rename(finding.path, target)
        moved.append((finding.path, target))
    return moved
