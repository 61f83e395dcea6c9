"""Stored runs as TensorBoard event files: ``<experiment>/tensorboard/<run_id>/``.

Scalars ``curves/<column>`` at each evaluation's meta-step and ``results/<column>`` at the
last step, the settings as text and as TensorBoard's hyperparameters (so the HParams
dashboard compares runs by them). ``raybench.json`` in the run's folder records which
stored version was logged; a rerun replaces the folder's event files.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from raybench.atomic import atomic_write_bytes
from raybench.results import ExperimentStore

if TYPE_CHECKING:
    from raybench.trackers import StoredRun  # the package imports this module

MARKER = "raybench.json"


def _seconds(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _hparam(value: Any) -> bool | int | float | str:
    return value if isinstance(value, bool | int | float | str) else str(value)


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, store: ExperimentStore) -> None:
        from tensorboardX import SummaryWriter

        self.writer_class = SummaryWriter
        self.root = store.root / "tensorboard"

    def log_run(self, run: StoredRun) -> bool:
        from tensorboardX.summary import hparams

        folder = self.root / run.run_id
        marker = folder / MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("ended") == run.ended:
            return False
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        marker.unlink(missing_ok=True)
        row = run.row
        started = _seconds(row.get("started_at"))
        writer = self.writer_class(logdir=str(folder), flush_secs=30)
        try:
            for step, values in run.curve_points():
                seconds = values.get("train_time_s")
                stamp = started + seconds if started is not None and seconds is not None else None
                for key, value in values.items():
                    writer.add_scalar(f"curves/{key}", value, step, walltime=stamp)
            results = run.results()
            steps = int(row.get("steps_done") or 0)
            for key, value in results.items():
                writer.add_scalar(
                    f"results/{key}", value, steps, walltime=_seconds(row.get("ended_at"))
                )
            settings = run.settings()
            table = "\n".join(f"| {k} | {v} |" for k, v in sorted(settings.items()))
            writer.add_text("settings", "| setting | value |\n| --- | --- |\n" + table, 0)
            about = ", ".join(f"{k.removeprefix('raybench.')}: {v}" for k, v in run.tags().items())
            writer.add_text("run", about, 0)
            summaries = hparams(
                {k: _hparam(v) for k, v in settings.items()},
                {f"results/{k}": v for k, v in results.items()},
            )
            for summary in summaries:
                writer.file_writer.add_summary(summary)
        finally:
            writer.close()
        atomic_write_bytes(marker, json.dumps({"ended": run.ended}).encode())
        return True

    def close(self) -> None:
        pass
