"""Progress when the output is not a terminal: a plain line per running run at least every
``log_every`` seconds (step, validation accuracy, ms/step, ETA) and the overall ETA; in a
terminal, the live bars only. Time is a fake clock here, never measured."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from raybench.execution.progress import RunProgress, format_eta
from raybench.solvers import make_config
from raybench.train import Progress

RAYBENCH = Path(sys.executable).parent / "raybench"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(buffer: io.StringIO) -> list[str]:
    """The printed lines without their HH:MM:SS stamp."""
    return [
        line[9:] for line in buffer.getvalue().splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)
    ]


def test_format_eta() -> None:
    assert [format_eta(s) for s in (None, 5, 65, 11934, -3)] == [
        "—",
        "5s",
        "1m 05s",
        "3h 18m",
        "0s",
    ]


def test_a_line_per_run_every_interval_with_eta() -> None:
    clock, buffer = Clock(), io.StringIO()
    console = Console(file=buffer, width=200)  # not a terminal: a log
    maml = make_config("maml", "paper", {"seed": 0})  # 2000 steps, evaluated every 100
    fomaml = make_config("fomaml", "paper", {"seed": 0})
    progress = RunProgress(console, 3, log_every=60, clock=clock, ticker=False)
    with progress:
        progress.add(maml)
        progress.add(fomaml)
        progress.tick()
        assert lines(buffer) == []  # nothing started: nothing to say yet
        progress.update(Progress(maml.run_id, 1, 2000, None, ms_per_step=7000.0), node="n1")
        assert lines(buffer) == [
            "maml seed 0 on n1: step 1/2000 (0%), 7000 ms/step, ETA 3h 53m"  # 1999 x 7 s
        ]
        clock.now += 30
        progress.update(Progress(maml.run_id, 6, 2000, None, ms_per_step=6000.0), node="n1")
        progress.tick()
        assert len(lines(buffer)) == 1  # not due for another 30 s
        clock.now += 30
        progress.update(Progress(maml.run_id, 11, 2000, None, ms_per_step=6000.0), node="n1")
        # due: the observed rate (60 s for 10 steps) times the 1989 steps left
        assert lines(buffer)[-1] == (
            "maml seed 0 on n1: step 11/2000 (1%), 6000 ms/step, ETA 3h 18m"
        )
        progress.tick()  # the overall line: maml's 11934 s, then fomaml's 2000 steps and
        # the third run's at the only speed seen (6 s/step), all on one run in flight
        assert lines(buffer)[-1] == "all runs: 0/3 finished, 1 running, 2 waiting; ETA 9h 58m"
        # a stalled run still gets its line, which says when it last reported
        clock.now += 120
        progress.tick()
        assert lines(buffer)[-2].endswith("ETA 3h 18m, last report 2m 00s ago")
        # an evaluation point prints at once, with the validation accuracy
        progress.update(Progress(maml.run_id, 100, 2000, 41.5, ms_per_step=5000.0), node="n1")
        assert "step 100/2000 (5%), val 41.5%, 5000 ms/step" in lines(buffer)[-1]
        progress.finish(maml.run_id, "completed", 2000)
        assert (
            lines(buffer)[-2] == "maml seed 0: completed at step 2000/2000, val 41.5% after 3m 00s"
        )
        assert lines(buffer)[-1].startswith("all runs: 1/3 finished, 0 running, 2 waiting")


def test_no_plain_lines_in_a_terminal_or_when_off() -> None:
    config = make_config("maml", "paper")
    for console, every in (
        (Console(file=io.StringIO(), force_terminal=True, width=120), 60.0),
        (Console(file=io.StringIO(), width=120), 0.0),
    ):
        clock = Clock()
        progress = RunProgress(console, 1, log_every=every, clock=clock, ticker=False)
        progress.add(config)
        progress.update(Progress(config.run_id, 1, 2000, None, ms_per_step=10.0))
        clock.now += 600
        progress.update(Progress(config.run_id, 2, 2000, None, ms_per_step=10.0))
        progress.tick()
        assert lines(console.file) == []


def test_ray_progress_carries_ms_per_step() -> None:
    from raybench.execution.ray_backend import _event

    event = _event("r", {"step": 3, "total": 4, "val_acc": None, "phase": "train",
                         "ms_per_step": 12.5})  # fmt: skip
    assert event.ms_per_step == 12.5 and event.step == 3


@pytest.mark.slow
def test_run_piped_prints_progress_lines(tmp_path: Path) -> None:
    """Through the console script with stdout a pipe, on real Omniglot: every step due
    (--log-every tiny), each line with the worker's ms/step and an ETA; the overall line."""
    proc = subprocess.run(
        [str(RAYBENCH), "run", "--preset", "smoke", "--solvers", "fomaml", "--backend",
         "inline", "--set", "meta_steps=3", "--log-every", "0.001", "--no-report"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    steps = re.findall(r"fomaml seed 0: step (\d)/3 \(\d+%\), (?:val [\d.]+%, )?([\d.]+) ms/step, "
                       r"(ETA \S+|testing)", proc.stdout)  # fmt: skip
    assert {int(s) for s, _, _ in steps} == {1, 2, 3}, proc.stdout
    assert all(float(ms) > 0 for _, ms, _ in steps)
    assert "fomaml seed 0: completed at step 3/3" in proc.stdout
    assert "all runs: 1/1 finished, 0 running, 0 waiting" in proc.stdout
