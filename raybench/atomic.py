"""Files that are either whole or absent: written under a hidden name, then renamed.

A killed process never leaves a half-written result or state, and two processes never
write the same temporary file. The content is built in memory first and written with
plain ``os.write``, so a full disk or a file-size limit surfaces as the operating system's
own error (``ENOSPC``, ``EFBIG``), not as a library's garbled message.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

# A write that failed for want of space, not for a reason the user must fix elsewhere.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def describe_write_error(exc: OSError) -> str:
    """One line for a failed write: a full disk says so, anything else as the OS put it."""
    if is_disk_full(exc):
        return f"the disk is full ({exc.strerror or exc})"
    text = exc.strerror or str(exc)
    return f"{type(exc).__name__}: {text}"


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """``data`` as the new content of ``path``, synced to disk before it replaces it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
