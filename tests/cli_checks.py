"""What the CLI tests check again and again: a one-line error, and the processes a
command left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit code 2, no traceback, and exactly one ``raybench: error: ...`` line on stderr
    holding every word; that line."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def descendants(root: int) -> dict[int, str]:
    """Every descendant of process ``root`` (never another user's Ray): pid -> its command
    line, arguments separated by spaces (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            found[pid] = command.decode(errors="replace")
            todo.append(pid)
    return found
