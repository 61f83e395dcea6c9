"""How runs are placed (the options of every back end) and what each run came to: shared by
the dispatcher in ``raybench.execution`` and the back ends it calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from raybench.errors import RaybenchError
from raybench.limits import RANGES, within

if TYPE_CHECKING:
    from raybench.trackers import TrackerSpec

BACKENDS = ("ray", "inline")
# The numeric options checked by their range (raybench.limits): (name, whole, may be None).
OPTION_KINDS = (
    ("gpus_per_run", False, True), ("cpus_per_run", False, False),
    ("max_concurrent", True, True), ("max_retries", True, False),
    ("log_every", False, False), ("connect_timeout", False, False),
)  # fmt: skip
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
        for name, integer, optional in OPTION_KINDS:
            within(name, getattr(self, name), RANGES[name], integer=integer, optional=optional)


# Every command's and the API's defaults for where and how runs execute: read from here,
# never written again (tests/test_cli_conventions.py compares them).
DEFAULTS = ExecutionOptions()
