"""Ctrl-C delivered inside a finaliser, as Ray's ``ActorHandle.__del__`` can receive it:
Python prints "Exception ignored" and goes on. Tests reach this fault by the event (the
finaliser raises the signal itself), never by timing."""

from __future__ import annotations

import signal

import pytest

from raybench.execution.storing import ResultWriter


class DropsCtrlC:
    """An object whose finaliser receives Ctrl-C, as a dropped Ray actor handle can."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__


def swallow_a_ctrl_c() -> None:
    DropsCtrlC()  # made and dropped at once: Python prints "Exception ignored", goes on


def writes_then_swallows_a_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each stored run is followed by a Ctrl-C that a finaliser swallows."""
    write = ResultWriter.write

    def and_then_ctrl_c(self: ResultWriter, *args: object, **kwargs: object) -> bool:
        stored = write(self, *args, **kwargs)
        swallow_a_ctrl_c()
        return stored

    monkeypatch.setattr(ResultWriter, "write", and_then_ctrl_c)
