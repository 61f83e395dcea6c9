"""A run's training state at its last evaluation point, so a killed run continues there.

A paper-preset run is hours on a CPU and minutes on a GPU; a worker that dies (killed, out
of memory, machine restarted) should lose at most one evaluation interval, not the run.
The state is everything the rest of the run depends on: meta-parameters, the outer
optimiser, the task generator, and the curves and timers so far. Resuming from it gives
the same result as never stopping (a test checks it bit for bit on the CPU).

The file sits beside the run's results (``<experiment>/progress/<run_id>.pt``), is written
atomically by the run itself, and is removed by the store once the run's row is written.
On a cluster it helps only when ``--out`` is storage every node sees; otherwise a retried
run on another node starts from step 0, as it would without it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from raybench.atomic import atomic_write_bytes, is_disk_full
from raybench.config import RunConfig
from raybench.models import Params

# 1: accuracies as fractions; 2: in percent, as the store has them since schema version 2.
FORMAT = 2


@dataclass
class TrainingState:
    """Where a run stood after evaluating at ``step``."""

    step: int
    params: Params
    optimiser: dict[str, Any]
    generator: torch.Tensor
    curves: list[dict[str, float]] = field(default_factory=list)
    train_time_s: float = 0.0
    interval_ms: list[float] = field(default_factory=list)
    val_acc: float | None = None
    wall_time_s: float = 0.0  # of the earlier segments of the run, added to the next one
    peak_memory_mb: float | None = None
    started_at: str = ""  # ISO time of the run's first start


class OwnerGone(BaseException):
    """The driver that started this run is gone: nobody owns its state any more, and a new
    driver may be training it. Not an ``Exception``: no handler may turn it into a result."""


_owner_alive: Callable[[], bool] | None = None


def watch_owner(alive: Callable[[], bool] | None) -> None:
    """In a worker: check ``alive()`` right before each save, and never write a run's state
    once it returns False (see :class:`OwnerGone`)."""
    global _owner_alive
    _owner_alive = alive


def save_state(path: Path, config: RunConfig, state: TrainingState) -> None:
    """Written under a temporary name and renamed: a kill mid-write leaves the old state,
    and so does a full disk, which is then said in so many words."""
    payload = {
        "format": FORMAT,
        "run_id": config.run_id,
        "config": config.to_json(),
        **{k: getattr(state, k) for k in TrainingState.__dataclass_fields__},
        "params": {k: v.detach().cpu() for k, v in state.params.items()},
        "generator": state.generator.cpu(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    if _owner_alive is not None and not _owner_alive():
        raise OwnerGone(
            f"the driver of {config.run_id} is gone; state of step {state.step} not saved"
        )
    try:
        atomic_write_bytes(path, buffer.getbuffer())
    except OSError as exc:
        kept = "the previous state is kept" if path.is_file() else "no earlier state exists"
        if is_disk_full(exc):
            raise OSError(
                exc.errno,
                f"the disk is full: the training state of step {state.step} could not be "
                f"saved to {path} ({exc.strerror}); {kept}: free some space, then "
                f"`raybench run --resume {path.parent.parent.name}` continues the run",
            ) from None
        raise OSError(
            exc.errno, f"cannot save the training state to {path} ({exc.strerror}); {kept}"
        ) from None


def load_state(path: Path, config: RunConfig) -> TrainingState | None:
    """The saved state of this run, or None (no file, another run id, i.e. another
    configuration or seed, another format, or a file that does not load: then the run
    starts over rather than failing). Compared by run id, not the config's JSON, so a
    setting added since (``raybench.config.ADDED_SETTINGS``) does not stop a resume."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if "run_id" in payload:
        same_run = payload["run_id"] == config.run_id
    else:  # written before states recorded their run id (commit d8d162a)
        same_run = payload.get("config") == config.to_json()
    if payload.get("format") not in (1, FORMAT) or not same_run:
        return None
    state = TrainingState(**{k: payload[k] for k in TrainingState.__dataclass_fields__})
    if payload["format"] == 1:  # accuracies were fractions
        state.curves = [
            {k: 100 * v if "_acc_" in k else v for k, v in row.items()} for row in state.curves
        ]
        state.val_acc = None if state.val_acc is None else 100 * state.val_acc
    return state


def progress_params(payload: object) -> tuple[Params, int] | None:
    """The meta-parameters and step of a loaded training-state file, or None if ``payload``
    is something else (e.g. a plain checkpoint, which is the parameters themselves)."""
    if isinstance(payload, dict) and payload.get("format") in (1, FORMAT):
        params, step = payload.get("params"), payload.get("step")
        if isinstance(params, dict) and isinstance(step, int):
            return params, step
    return None


@dataclass(frozen=True)
class SavedState:
    """A training state on disk, as ``--resume`` sees it: which run, how far it got."""

    path: Path
    run_id: str
    step: int
    config: RunConfig


def saved_states(folder: Path) -> tuple[list[SavedState], list[tuple[Path, str]]]:
    """Every state file of an experiment's ``progress/`` folder: those a run can continue
    from, and the others with the reason (unreadable, another format, a name that is not
    its run's id). Hidden files are a write in progress or one killed mid-way: ignored."""
    from raybench.configfile import config_from_json
    from raybench.errors import RaybenchError

    usable: list[SavedState] = []
    unusable: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return usable, unusable
    for path in sorted(folder.glob("*.pt")):
        if path.name.startswith("."):
            continue
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, not a torch file, refused by weights_only
            unusable.append((path, f"unreadable ({' '.join(str(exc).split())[:120]})"))
            continue
        if not isinstance(payload, dict) or payload.get("format") not in (1, FORMAT):
            unusable.append((path, "not a raybench training state"))
            continue
        try:
            config = config_from_json(payload["config"])
        except (KeyError, TypeError, ValueError, RaybenchError) as exc:
            unusable.append((path, f"its configuration does not load ({exc})"))
            continue
        run_id = payload.get("run_id", config.run_id)
        if run_id != config.run_id or path.stem != run_id:
            unusable.append((path, f"holds run {run_id}, not {path.stem}"))
            continue
        usable.append(SavedState(path, run_id, int(payload.get("step", 0)), config))
    return usable, unusable
