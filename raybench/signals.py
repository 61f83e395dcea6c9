"""Stopping raybench: SIGTERM the way Ctrl-C does, and a Ctrl-C that cannot be lost.

A batch system, ``timeout`` or ``kill`` sends SIGTERM; it is turned into the same
``KeyboardInterrupt`` as SIGINT, so the same cleanup runs and the same message and exit
code (130) follow. Ray installs its own SIGTERM handler when it starts (one that exits
with code 1 and dumps stacks), so the handler is installed again after ``ray.init``.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; when that is
a finaliser (Ray's ``ActorHandle.__del__`` runs whenever a driver drops an actor), Python
prints "Exception ignored" and goes on as if no signal had come, and a driver waiting for
a held run waits forever. So every stop signal is also remembered, and the loops that
wait for runs call :func:`raise_if_interrupted` on each turn: a stop swallowed by a
finaliser is raised again there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_installed = False
_interrupted = False  # a stop signal came since the last watch began


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM raise ``KeyboardInterrupt`` in the main thread (from now on)."""
    global _installed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_interrupt)
        _installed = True


def reassert() -> None:
    """After a library replaced the handler (``ray.init`` does): ours again, if we had one."""
    if _installed:
        stop_on_sigterm()


@contextlib.contextmanager
def interrupts_remembered() -> Iterator[None]:
    """Around a loop that waits for runs: Ctrl-C raises ``KeyboardInterrupt`` as usual and
    is remembered for :func:`raise_if_interrupted`; the previous handler comes back after.
    Where Ctrl-C is ignored (a background job) or this is not the main thread, it stays so.
    """
    global _interrupted
    _interrupted = False  # a stop an earlier command took (a notebook's) is not this one's
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if not callable(previous):  # ignored (a background job), the OS default, or not ours
        yield
        return
    signal.signal(signal.SIGINT, _as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a stop signal came and was swallowed on its way."""
    if _interrupted:
        raise KeyboardInterrupt
