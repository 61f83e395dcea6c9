"""The range of every numeric option that a command and the API take, declared once: the CLI
declares its flags with these (typer's ``min``/``max``, :func:`bounds`), the API checks its
arguments by them (:mod:`raybench.api.parameters`), and so do the options of where runs and
trials execute (``ExecutionOptions``, ``SweepOptions``)."""

from __future__ import annotations

import math

from raybench.errors import ParameterError

Range = tuple[float | None, float | None]  # (low, high), None: unbounded

# Each numeric option's range, by its keyword (a flag's name with underscores). Resources
# are bounded above too: beyond any machine, Ray waits for them forever.
RANGES: dict[str, Range] = {
    "seed": (0, None), "seeds": (1, None), "steps": (1, None), "trials": (1, None),
    "final_steps": (1, None), "tasks": (1, None), "timed_steps": (1, None), "warmup": (0, None),
    "gpus_per_run": (0, 8), "cpus_per_run": (0.01, 1024), "max_concurrent": (1, 100_000),
    "max_retries": (0, 1000), "connect_timeout": (1, 1e9), "log_every": (0, 1e9),
    "detect": (0.01, 100.0), "dpi": (10, 1200),
}  # fmt: skip
# A command whose option has a range of its own: bench and scaling time whole torch threads.
COMMAND_RANGES: dict[str, dict[str, Range]] = {
    "bench": {"cpus_per_run": (1, 1024)},
    "scaling": {"cpus_per_run": (1, 1024)},
}


def range_of(keyword: str, command: str | None = None) -> Range:
    """The range of ``keyword`` (in ``command``, where it has its own)."""
    return COMMAND_RANGES.get(command or "", {}).get(keyword) or RANGES[keyword]


def bounds(keyword: str, command: str | None = None) -> dict[str, float]:
    """typer's ``min``/``max`` for the flag of ``keyword`` (in ``command``)."""
    low, high = range_of(keyword, command)
    return {k: v for k, v in (("min", low), ("max", high)) if v is not None}


def within(
    name: str, value: object, limits: Range, *, integer: bool = False, optional: bool = False
) -> None:
    """``value`` a finite number (a whole one where ``integer``) within ``limits``, or None
    where ``optional``; else a :class:`ParameterError` naming ``name``."""
    if value is None and optional:
        return
    low, high = limits
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not float(value).is_integer())
        or not math.isfinite(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        kind = "a whole number" if integer else "a number"
        if low is not None and high is not None:
            span = f"from {low:g} to {high:g}"
        else:
            span = f"at least {low:g}" if low is not None else f"at most {high:g}"
        raise ParameterError(
            "{" + name + "} {value!r}: expected {kind} {span}", value=value, kind=kind, span=span
        )
