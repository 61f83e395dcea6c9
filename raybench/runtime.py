"""Facts about where a run happens: device, library versions, code version, peak memory."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

from raybench.errors import RaybenchError

LIBRARIES = (
    "raybench",
    "torch",
    "torchvision",
    "numpy",
    "pyarrow",
    "rich",
    "typer",
    "ray",
    "optuna",
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RaybenchError("device=cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count() or 0
    return f"cpu: {model or platform.processor() or platform.machine()} ({cores} cores)"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    versions["torch"] = torch.__version__
    versions["cuda"] = torch.version.cuda or "none"
    return versions


def git_commit() -> str:
    """The commit of the code that ran, ``-dirty`` when it had uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def proc_status_mb(key: str) -> float | None:
    """A memory line of ``/proc/self/status`` (``VmRSS``: resident now, ``VmHWM``: its peak)
    in MiB, or None where there is no such file (not Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return None


class PeakMemory:
    """Peak memory of the code between :meth:`reset` and :meth:`read`.

    GPU: ``torch.cuda.max_memory_allocated``. CPU: the process's peak resident set size,
    reset through ``/proc/self/clear_refs`` where Linux allows it (otherwise the peak of the
    whole process so far, which ``kind`` then says)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.kind = "cpu_peak_rss_process"

    def read_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        peak_mb = proc_status_mb("VmHWM")
        if peak_mb is not None:
            return peak_mb
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
