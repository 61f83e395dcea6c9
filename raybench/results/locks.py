"""One writer per run: an advisory lock per run id while a driver trains it.

Two ``raybench run`` on the same store would otherwise both train every unfinished run and
both write its training state, each continuing from the other's. A driver takes
``<experiment>/locks/<run_id>.lock`` (``flock``, released by the kernel when the process
dies, even by SIGKILL) before it starts a run and leaves the run to whoever holds it. The
file says who holds it; it is removed on release, so a finished experiment has no locks.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking, as before
    fcntl = None  # type: ignore[assignment]

LOCKS = "locks"


def lock_path(root: Path, run_id: str) -> Path:
    return Path(root) / LOCKS / f"{run_id}.lock"


def holder(path: Path) -> str:
    """Who holds a lock, as its file says (``pid N on HOST``), or ``another process``."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    return "another process"


def is_locked(path: Path) -> bool:
    """Whether some process holds the lock now (a probe that never keeps it)."""
    if fcntl is None or not path.is_file():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class RunLocks:
    """The run locks this driver holds; all released on exit."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.held: dict[str, tuple[Path, int]] = {}

    def __enter__(self) -> RunLocks:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release_all()

    def acquire(self, run_id: str) -> bool:
        """Take the run's lock without waiting; False if another process has it."""
        if fcntl is None or run_id in self.held:
            return True
        path = lock_path(self.root, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its last holder removed after we opened it
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
                self.held[run_id] = (path, fd)
                return True
            os.close(fd)

    def release(self, run_id: str) -> None:
        path, fd = self.held.pop(run_id, (None, None))
        if path is None or fd is None:
            return
        with contextlib.suppress(OSError):
            path.unlink()  # while still held: a waiting process then retries a fresh file
        os.close(fd)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when no other lock is left

    def release_all(self) -> None:
        for run_id in list(self.held):
            self.release(run_id)
