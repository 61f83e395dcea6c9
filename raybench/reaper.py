"""Ends what is left of an embedded Ray when its driver dies without shutting it down.

Killed outright (SIGKILL, the out-of-memory killer), a driver cannot stop the Ray it
started. Ray's GCS and raylet die with it (they share its fate), but the agents the raylet
started (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) notice the raylet's death and
then wait, for minutes, to report it to a GCS that is gone. This small process, started by
the driver right after ``ray.init``, keeps a list of the driver's Ray processes and kills
the ones still running once the driver is gone (its end of a pipe closes), or once it has
shut Ray down normally. Standard library only: it starts in a fraction of a second.

Run as ``python -m raybench.reaper DRIVER_PID SINCE`` with the pipe as standard input;
``SINCE`` is the machine's uptime in seconds just before ``ray.init``: only processes started
after it, below the driver, with Ray in their command line are ever touched.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from pathlib import Path

POLL_S = 0.25
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a running process, None otherwise."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def ray_descendants(driver: int, since_ticks: int) -> dict[int, int]:
    """The driver's Ray processes now: pid -> start time."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [driver]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            if pid == os.getpid() or stats[pid][1] < since_ticks:
                continue
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ray" in command:
                found[pid] = stats[pid][1]
    return found


def reap(known: dict[int, int]) -> None:
    for pid, start in known.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == start:  # the same process, not a reused pid
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> None:
    driver, since = int(argv[0]), float(argv[1])
    since_ticks = int(since * TICKS) - TICKS  # a second's slack for rounding
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    known: dict[int, int] = {}
    while True:
        known.update(ray_descendants(driver, since_ticks))
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # the driver closed the pipe, or died
    reap(known)


if __name__ == "__main__":
    main(sys.argv[1:])
