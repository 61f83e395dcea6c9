"""Which training code made a run: a hash of the training path's source, not the commit.

A commit changes with every README edit; the numbers a run stores change only with the
code on its training path. So each run records a hash of those files' contents (paths
relative to the package, then bytes), and ``raybench report`` warns when the runs it shows
were made by training code other than the installed one, or by several versions.
Settings are not hashed here: every run stores its own. Studies, the report, the CLI and
the store are left out: they change how results are measured or shown, not what a run
trains.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# Globs under the package: the solvers, the network, tasks and data, the trainer and the
# numerical helpers they call.
TRAINING_PATH: tuple[str, ...] = (
    "solvers/*.py",
    "models.py",
    "tasks.py",
    "data/*.py",
    "data/splits/*.txt",  # the named data sets' class lists: what a run trains on
    "train.py",
    "run_setup.py",
    "speed.py",
    "batching.py",
    "autodiff.py",
    "linalg.py",
    "assumptions.py",
    "pairing.py",
    "metrics.py",
)

# Training code declared to train exactly as an older version: a change that moved
# declarations and computes nothing differently changes the fingerprint, not the numbers.
# Each entry: this fingerprint -> the older one it trains as. The evidence for each is
# tests/test_golden_runs.py passing bitwise at both (the numbers it compares were recorded
# by the older code), and says so in the commit that adds the entry.
EQUIVALENT: dict[str, str] = {
    # the read path made torch-free (issue 35): metric names, assumption-check verdicts and
    # solver families moved out of the training files into raybench.metrics,
    # raybench.assumption_checks and raybench.solver_catalog; golden runs bitwise equal
    "9da0627b2763": "db58c425bbdd",
    # each run records the kernels that rounded it (raybench.runtime.kernel_set, issue 45):
    # one field set, nothing computed differently; the float32 golden runs, recorded again
    # by this code, are bitwise those recorded by db58c425bbdd
    "2d0b85ce664b": "9da0627b2763",
    # one outer step (speed.outer_step) for training, bench and the A/B (issue 47): the same
    # operations in the same order; the float32 golden runs bitwise those of 2d0b85ce664b
    "0f0909d2b9cd": "2d0b85ce664b",
    # one run setup (raybench.run_setup) and a training loop in named stages over one loop
    # state (issue 47): the same objects built from the same seeds, the same operations in
    # the same order; the float32 golden runs bitwise those of 2d0b85ce664b
    "b14f8318f524": "0f0909d2b9cd",
    # a folder of classes as a data set (raybench/data/folder.py, issue 49), and a task
    # sampler whose classes may hold different numbers of images and channels (a flat pool
    # with each class's start; Omniglot's draws unchanged): the same random numbers, the
    # same images gathered; the float32 golden runs bitwise those of 2d0b85ce664b
    "b25ef9224721": "b14f8318f524",
    # the conv4 network's input follows the data set's images (channels, side) and its head
    # the features left after four poolings (issue 49): Omniglot's network built as before,
    # parameter for parameter; the float32 golden runs bitwise those of 2d0b85ce664b
    "99b417137008": "b25ef9224721",
    # CIFAR-FS and FC100 from a local CIFAR-100 binary archive (raybench/data/cifar.py and
    # their class lists, now part of the training path, issue 49): new files no Omniglot run
    # reads; the float32 golden runs bitwise those of 2d0b85ce664b
    "4a6c0dadc61d": "99b417137008",
    # a folder's cache keyed by its files' names, sizes and times, not their bytes (issue
    # 49): no Omniglot run reads it; the float32 golden runs bitwise those of 2d0b85ce664b
    "a41d3ea3af86": "4a6c0dadc61d",
    # the task sampler's class starts and sizes copied to the device once, not at every
    # gather, and its pool's rows found without a loop over classes (issue 49, review): the
    # same rows, the same draws; the float32 golden runs bitwise those of 2d0b85ce664b
    "5bc92083beeb": "a41d3ea3af86",
}


def training_files(root: Path = PACKAGE) -> list[Path]:
    """The training path's files under ``root`` (a copy of the package), sorted."""
    return sorted({p for pattern in TRAINING_PATH for p in root.glob(pattern) if p.is_file()})


def fingerprint_of(root: Path) -> str:
    """12 hex digits of a SHA-1 over each training-path file's relative path and bytes."""
    digest = hashlib.sha1()
    for path in training_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The installed package's training-code fingerprint (read once per process)."""
    return fingerprint_of(PACKAGE)


def trains_as(fingerprint: str) -> str:
    """The oldest training code ``fingerprint`` is declared to train exactly as
    (:data:`EQUIVALENT`); itself when none."""
    seen = {fingerprint}
    while fingerprint in EQUIVALENT and EQUIVALENT[fingerprint] not in seen:
        fingerprint = EQUIVALENT[fingerprint]
        seen.add(fingerprint)
    return fingerprint


def version_warning(recorded: Iterable[str | None], installed: str) -> str | None:
    """One line when runs were made by training code other than ``installed`` or by
    several versions, naming how many runs each; None when all match, counting code
    declared to train as another (:data:`EQUIVALENT`) as that code. Runs stored before
    the fingerprint existed (None) are counted but never differ by themselves."""
    counts = Counter(recorded)
    unknown = counts.pop(None, 0) + counts.pop("", 0)
    if not counts or {trains_as(fp) for fp in counts} == {trains_as(installed)}:
        return None
    total = sum(counts.values()) + unknown

    def by(fp: str, n: int) -> str:
        if fp == installed:
            return f"{n} by {fp} (installed)"
        same = trains_as(fp) == trains_as(installed)
        return f"{n} by {fp}" + (" (trains as the installed)" if same else "")

    parts = [by(fp, n) for fp, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if unknown:
        parts.append(f"{unknown} unrecorded (older raybench)")
    other = sum(n for fp, n in counts.items() if trains_as(fp) != trains_as(installed))
    return (
        f"{other} of {total} runs were made by training code other than the installed one "
        f"({installed}): {', '.join(parts)}; their numbers may not be what this code gives"
    )
