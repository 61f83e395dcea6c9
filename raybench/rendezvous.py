"""A meeting point for fault tests: a run waits at chosen meta-steps until it is let go.

A test that kills, interrupts or races a run must reach the fault at a known point of
the run, never when a clock says the run should be there. With
``RAYBENCH_RENDEZVOUS=<folder>`` set (inherited by subprocesses and Ray's workers), a run
whose id, or ``any``, has a gate file ``<folder>/<id>.gate`` listing meta-steps stops at
each listed step after its evaluation, state and progress of that step are out: it writes
``<folder>/<run_id>.at<step>`` (its pid, as JSON) and waits until
``<folder>/<run_id>.go<step>`` exists or the step leaves the gate file. Unset, a run
looks the variable up once, when it starts, and pays nothing per step.
``tests/rendezvous.py`` is the test side.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from raybench.atomic import atomic_write_bytes

ENV = "RAYBENCH_RENDEZVOUS"
POLL_S = 0.01
GIVE_UP_S = 1800.0  # a test that never lets go has failed long before


def gated_steps(gate: Path) -> set[int]:
    """The steps a gate file lists (whitespace or commas apart); none if it is absent."""
    try:
        text = gate.read_text()
    except OSError:
        return set()
    return {int(word) for word in text.replace(",", " ").split()}


def arrival(folder: Path, run_id: str, step: int) -> Path:
    return folder / f"{run_id}.at{step}"


def release_file(folder: Path, run_id: str, step: int) -> Path:
    return folder / f"{run_id}.go{step}"


def hold_for(run_id: str) -> Callable[[int], float] | None:
    """The pause a run calls after each step when fault tests set gates; None (the
    normal case, one lookup per run) when they do not."""
    value = os.environ.get(ENV)
    if not value:
        return None
    return functools.partial(pause, Path(value), run_id)


def pause(folder: Path, run_id: str, step: int) -> float:
    """Wait here if a gate holds ``run_id`` at ``step``; the seconds waited, which are
    not training time."""
    gates = [g for g in (folder / f"{run_id}.gate", folder / "any.gate") if step in gated_steps(g)]
    if not gates:
        return 0.0
    started = time.perf_counter()
    here = {"run_id": run_id, "step": step, "pid": os.getpid()}
    atomic_write_bytes(arrival(folder, run_id, step), json.dumps(here).encode())
    go = release_file(folder, run_id, step)
    deadline = time.monotonic() + GIVE_UP_S
    while not go.exists() and any(step in gated_steps(g) for g in gates):
        if time.monotonic() > deadline:
            raise RuntimeError(f"rendezvous: {run_id} was never let go at step {step} ({folder})")
        time.sleep(POLL_S)
    return time.perf_counter() - started
