"""The test side of :mod:`raybench.rendezvous`: hold a run at a meta-step, learn its pid
when it is there, fault it, let it go. A fault test reaches its fault by this event,
never by a run being slow or fast enough; ``wait`` fails with what went wrong when the
run ends first or never comes (its deadline is a backstop against a hung suite, not a
timing assumption)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from raybench.rendezvous import ENV, arrival, release_file

NEVER_S = 900.0  # how long a run may take to reach its gate before the test gives up


class Rendezvous:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """The environment for a subprocess whose runs obey these gates."""
        return {**os.environ, ENV: str(self.folder)}

    def gate(self, run_id: str, *steps: int) -> None:
        """Hold ``run_id`` (``any``: every run) at each of ``steps``."""
        gate = self.folder / f"{run_id}.gate"
        gate.write_text(" ".join(str(s) for s in steps))

    def arrived(self, step: int) -> dict[str, int]:
        """run id -> pid of every run that has reached ``step``."""
        found = {}
        for path in self.folder.glob(f"*.at{step}"):
            if not path.name.startswith("."):
                found[path.name.removesuffix(f".at{step}")] = json.loads(path.read_text())["pid"]
        return found

    def wait(
        self,
        run_id: str,
        step: int,
        proc: subprocess.Popen | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> int:
        """Block until ``run_id`` waits at ``step``; its pid. Fails if ``proc`` ends
        (or ``alive`` turns false) first."""
        here = arrival(self.folder, run_id, step)
        deadline = time.monotonic() + NEVER_S
        while not here.exists():
            if proc is not None and proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    f"rendezvous never reached: {run_id} at step {step}; the process ended "
                    f"with {proc.returncode}: {out[-1500:]} {err[-1500:]}"
                )
            if alive is not None and not alive():
                raise AssertionError(f"rendezvous never reached: {run_id} at step {step}")
            assert time.monotonic() < deadline, (
                f"rendezvous never reached: {run_id} at step {step} within {NEVER_S:.0f} s"
            )
            time.sleep(0.02)
        return int(json.loads(here.read_text())["pid"])

    def release(self, run_id: str, step: int) -> None:
        release_file(self.folder, run_id, step).touch()

    def clear(self) -> None:
        """Open every gate: a run waiting anywhere goes on, later runs pass freely."""
        for gate in self.folder.glob("*.gate"):
            gate.unlink()
