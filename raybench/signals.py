"""SIGTERM stops raybench the way Ctrl-C does: a clean stop, finished results stored.

A batch system, ``timeout`` or ``kill`` sends SIGTERM; it is turned into the same
``KeyboardInterrupt`` as SIGINT, so the same cleanup runs and the same message and exit
code (130) follow. Ray installs its own SIGTERM handler when it starts (one that exits
with code 1 and dumps stacks), so the handler is installed again after ``ray.init``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_installed = False


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
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
