"""Facts about where a run happens: device, kernels, library versions, code version, peak
memory."""

from __future__ import annotations

import contextlib
import functools
import hashlib
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
    return f"cpu: {_cpu_model()} ({os.cpu_count() or 0} cores)"


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def _cpuinfo(*keys: str) -> str:
    """The first /proc/cpuinfo line's value for any of ``keys`` ("" where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(keys):
                return line.split(":", 1)[1].strip()
    return ""


# The environment variables that choose which CPU kernels torch's libraries run (and so how
# float arithmetic rounds): ATen's vectorised kernels, oneDNN's instruction set, MKL's.
KERNEL_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
)


def cpu_identity() -> str:
    """The CPU's model and a hash of its instruction-set flags (what the libraries dispatch
    on): ``AMD EPYC (flags 716e95dd)``."""
    flags = " ".join(sorted(_cpuinfo("flags", "Features").split()))
    return f"{_cpu_model()} (flags {hashlib.sha1(flags.encode()).hexdigest()[:8]})"


def kernel_set(device: torch.device | None = None) -> str:
    """Which kernels round this process's float arithmetic on ``device`` (the CPU by
    default). Two runs of the same code, config and seed give bitwise the same numbers
    only where this text is the same; elsewhere float32 rounds differently in the last
    bits, a run amplifies that, and what reproduces is the distribution over seeds."""
    if device is not None and device.type == "cuda":
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return (
            f"{torch.cuda.get_device_name(device)}; CUDA {torch.version.cuda}; "
            f"cuDNN {cudnn or 'none'}; torch {torch.__version__}"
        )
    chosen = [f"{name}={os.environ[name]}" for name in KERNEL_VARIABLES if os.environ.get(name)]
    return (
        f"{cpu_identity()}; ATen {torch.backends.cpu.get_cpu_capability()}"
        + "".join(f"; {item}" for item in chosen)
        + f"; torch {torch.__version__}"
    )


def library_versions() -> dict[str, str]:
    """Python's, the libraries' and CUDA's versions, as every stored row records them."""
    return dict(_installed_versions())


@functools.cache  # a process's libraries never change; looking one up scans site-packages
def _installed_versions() -> tuple[tuple[str, str], ...]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    versions["torch"] = torch.__version__
    versions["cuda"] = torch.version.cuda or "none"
    return tuple(versions.items())


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


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU's; a CPU has none): before a clock is read."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
