"""Files that are either whole or absent: written under a hidden name, then renamed.

A killed process never leaves a half-written result or state, and two processes never
write the same temporary file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
