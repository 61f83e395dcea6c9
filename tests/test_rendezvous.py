"""The fault tests' rendezvous itself: off unless asked, a held run writes its arrival
and waits for exactly its own release (tests/rendezvous.py is the test side)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from rendezvous import Rendezvous

from raybench import rendezvous as hook


def test_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hook.ENV, raising=False)
    assert hook.hold_for("fomaml-s0-abc") is None
    monkeypatch.setenv(hook.ENV, "")
    assert hook.hold_for("fomaml-s0-abc") is None


def test_a_gated_run_waits_for_its_release_and_no_other_step_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meeting = Rendezvous(tmp_path / "meet")
    monkeypatch.setenv(hook.ENV, str(meeting.folder))
    meeting.gate("run-a", 3, 5)
    hold = hook.hold_for("run-a")
    assert hold is not None
    assert hold(2) == 0.0 and not meeting.arrived(2)  # not gated: no file, no wait
    assert hook.hold_for("run-b")(3) == 0.0  # another run passes the gate of run-a
    passed = threading.Event()
    thread = threading.Thread(target=lambda: (hold(3), passed.set()))
    thread.start()
    try:
        assert meeting.wait("run-a", 3, alive=thread.is_alive) == os.getpid()
        assert meeting.arrived(3) == {"run-a": os.getpid()}
        assert not passed.is_set()  # still held: nothing has let it go
        meeting.release("run-a", 5)  # another step's release does not free step 3
        assert not passed.wait(0.2)
        meeting.release("run-a", 3)
        thread.join()
    finally:
        meeting.clear()
        thread.join()
    assert passed.is_set()


def test_an_any_gate_holds_every_run_and_clearing_lets_all_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meeting = Rendezvous(tmp_path / "meet")
    monkeypatch.setenv(hook.ENV, str(meeting.folder))
    meeting.gate("any", 2)
    threads = [threading.Thread(target=hook.hold_for(r), args=(2,)) for r in ("x", "y")]
    for thread in threads:
        thread.start()
    for run_id in ("x", "y"):
        meeting.wait(run_id, 2, alive=lambda: all(t.is_alive() for t in threads))
    assert set(meeting.arrived(2)) == {"x", "y"}
    meeting.clear()
    for thread in threads:
        thread.join()


def test_wait_names_the_run_and_step_when_the_run_ends_first(tmp_path: Path) -> None:
    meeting = Rendezvous(tmp_path / "meet")
    with pytest.raises(AssertionError, match="never reached: run-a at step 4"):
        meeting.wait("run-a", 4, alive=lambda: False)
