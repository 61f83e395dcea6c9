"""A Ctrl-C cannot be lost: Python raises ``KeyboardInterrupt`` wherever the main thread
is, and one raised inside a finaliser (Ray's ``ActorHandle.__del__``) is printed and
dropped. The loops that wait for runs raise it again on their next turn; here the
interrupt is delivered inside a finaliser, by the event, never by timing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from interrupts import swallow_a_ctrl_c, writes_then_swallows_a_ctrl_c
from rich.console import Console

from raybench import signals
from raybench.execution import ExecutionOptions, execute
from raybench.results import ExperimentStore
from raybench.solvers import make_config

QUIET = Console(quiet=True)


def test_a_ctrl_c_a_finaliser_swallowed_is_raised_again(ctrl_c: list) -> None:
    with signals.interrupts_remembered():
        swallow_a_ctrl_c()  # without the watch, nothing more would ever happen
        assert [d.exc_type for d in ctrl_c] == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            signals.raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_no_ctrl_c_no_interrupt_and_each_watch_starts_afresh(ctrl_c: list) -> None:
    with signals.interrupts_remembered():
        signals.raise_if_interrupted()  # nothing came: nothing raised
        swallow_a_ctrl_c()
    with signals.interrupts_remembered():  # the next command (a notebook's next cell)
        signals.raise_if_interrupted()
    with signals.interrupts_remembered(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)  # raised where it lands, as Ctrl-C always was


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job
    try:
        with signals.interrupts_remembered():
            signal.raise_signal(signal.SIGINT)
            signals.raise_if_interrupted()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_inline_runs_stop_after_a_swallowed_ctrl_c(
    ctrl_c: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first run is stored, then Ctrl-C is swallowed: the second never starts."""
    configs = [make_config("fomaml", "smoke", {"seed": s}) for s in (0, 1)]
    store = ExperimentStore(tmp_path / "exp")
    writes_then_swallows_a_ctrl_c(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        execute(configs, store, QUIET, ExecutionOptions(backend="inline"))
    assert store.finished_ids() == {configs[0].run_id}
    assert [d.exc_type for d in ctrl_c] == [KeyboardInterrupt]
