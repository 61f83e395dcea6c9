"""A span of seconds as people read it, for progress lines and reports alike (torch-free:
the report and the live progress both use it)."""

from __future__ import annotations

MISSING = "—"  # what every table and progress line prints for a value not known


def duration_text(seconds: float | None, second_digits: int = 1) -> str:
    """``42.0s`` (``42s`` with no second digits), ``3m 07s`` or ``2h 05m``; ``—`` when
    unknown."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.{second_digits}f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
