"""How runs are placed (the options of every back end) and what each run came to: shared by
the dispatcher in ``raybench.execution`` and the back ends it calls."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raybench.errors import ParameterError, RaybenchError

if TYPE_CHECKING:
    from raybench.trackers import TrackerSpec

BACKENDS = ("ray", "inline")
DEFAULT_CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str  # completed | diverged | failed | skipped | busy | unstored
    error: str | None = None


@dataclass(frozen=True)
class ExecutionOptions:
    """How runs are placed; none of it changes a run's result."""

    backend: str = "ray"
    address: str | None = None  # None: start a local Ray; "auto", "host:port", "ray://..."
    gpus_per_run: float | None = None  # None: share the visible GPUs among concurrent runs
    cpus_per_run: float = 1.0
    max_concurrent: int | None = None
    max_retries: int = 2
    dashboard: bool = False
    rerun: bool = False
    source: str = "preset"  # recorded with each run: preset, config file, tuned
    log_every: float = 60.0  # not in a terminal: a progress line per run this often (0: off)
    tracker: TrackerSpec | None = None  # each stored run also logged to MLflow / TensorBoard
    label_settings: tuple[str, ...] = ()  # settings named in progress rows (a study's value)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S  # seconds to reach --address

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise RaybenchError(f"unknown backend {self.backend!r} (backends: ray, inline)")
        within("gpus_per_run", self.gpus_per_run, 0, 8, optional=True)
        within("cpus_per_run", self.cpus_per_run, 0.01, 1024)
        within("max_concurrent", self.max_concurrent, 1, 100_000, integer=True, optional=True)
        within("max_retries", self.max_retries, 0, 1000, integer=True)
        within("log_every", self.log_every, 0, 1e9)
        within("connect_timeout", self.connect_timeout, 1e-3, 1e9)


def within(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """A finite number (a whole one where ``integer``) from ``low`` to ``high``, or None
    where ``optional``; else a :class:`ParameterError` naming ``name``."""
    if value is None and optional:
        return
    kind = "a whole number" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not float(value).is_integer())
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ParameterError(
            "{" + name + "} {v!r}: expected {kind} from {low:g} to {high:g}",
            v=value,
            kind=kind,
            low=low,
            high=high,
        )


# Every command's and the API's defaults for where and how runs execute: read from here,
# never written again (tests/test_cli_conventions.py compares them).
DEFAULTS = ExecutionOptions()
