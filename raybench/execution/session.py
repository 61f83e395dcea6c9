"""The Ray a command runs on: an embedded local one, or a cluster at ``--address``.

Starting or reaching Ray fails in ways a user can fix (no cluster there, a client extra or
the dashboard's packages not installed, a GPU asked for on a cluster without one); each is
a one-line error before anything is written. Reaching an address is bounded in time: Ray
itself retries an unreachable address for many minutes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import ray
from ray._private import ray_constants

from raybench import signals
from raybench.config import RunConfig
from raybench.errors import ParameterError, RaybenchError
from raybench.execution.ray_auth import token_notice_silenced

LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's services bind to loopback


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Make the Ray started inside bind its services to 127.0.0.1, not every interface.

    Ray on Linux listens on all interfaces; with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` its
    node address is loopback and its servers bind there. Ray reads the variable once, at
    import: the processes Ray spawns see it in their environment, and for this process,
    which imported Ray already, the constant it was read into is set as well. Both are
    restored on exit, so a later connection to a real cluster is unaffected."""
    previous_env = os.environ.get(LOCAL_ONLY)
    previous_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[LOCAL_ONLY] = "0"
    if previous_flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop(LOCAL_ONLY, None)
        else:
            os.environ[LOCAL_ONLY] = previous_env
        if previous_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = previous_flag


def host_port(address: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (also ``[v6]:PORT``) as a pair; None for ``auto`` and ``ray://``."""
    if address == "auto" or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ParameterError(
            "{address} {given!r}: expected auto, HOST:PORT or ray://HOST:PORT (e.g. 10.0.0.5:6379)",
            given=address,
        )
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float) -> None:
    """A TCP connection to the cluster's GCS, within ``timeout`` seconds, or a clear error."""
    target = host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except TimeoutError:
        raise RaybenchError(
            f"no Ray cluster answered at {address} within {timeout:g} s (--connect-timeout); "
            "check the address and that `ray start --head` runs there"
        ) from None
    except OSError as exc:
        raise RaybenchError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); check the "
            "address and that `ray start --head` runs there"
        ) from None


def preflight(address: str | None, dashboard: bool) -> None:
    """What can be known to fail before Ray starts."""
    client = address is not None and address.startswith("ray://")
    if client and importlib.util.find_spec("grpc") is None:
        raise RaybenchError(
            f"--address {address}: ray:// addresses need the Ray client, which is not "
            "installed: pip install 'ray[client]' (or give the cluster's HOST:PORT)"
        )
    if dashboard and address is None:
        from ray._private.utils import get_dashboard_dependency_error

        if get_dashboard_dependency_error() is not None:
            raise RaybenchError(
                "--dashboard needs Ray's dashboard packages, which are not installed: "
                "pip install 'ray[default]' (or leave out --dashboard)"
            )


def _init_within(timeout: float, **kwargs: object) -> None:
    """``ray.init(**kwargs)``, given up on after ``timeout`` seconds. Ray cannot be
    interrupted mid-connection (it retries for many minutes), so it runs in a helper
    thread that is left behind when it does not finish in time. Meanwhile file descriptor
    2 goes to /dev/null: Ray's C++ core logs every failed attempt there, which would bury
    the one line that says what is wrong; if Ray is given up on, it stays there (the thread
    goes on logging) and Python's ``sys.stderr`` moves to a copy of the real one."""
    failure: list[BaseException] = []
    done = threading.Event()

    def connect() -> None:
        try:
            ray.init(**kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the caller
            failure.append(exc)
        finally:
            done.set()

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    finished = False
    try:
        threading.Thread(target=connect, name="raybench-connect", daemon=True).start()
        finished = done.wait(timeout)
    finally:
        if finished:
            os.dup2(saved, 2)
            os.close(saved)
        else:
            sys.stderr = os.fdopen(saved, "w", buffering=1)
    if not finished:
        raise RaybenchError(
            f"could not connect to the Ray cluster at {kwargs.get('address')} within "
            f"{timeout:g} s (--connect-timeout); is it a Ray head node (`ray start --head`)?"
        )
    if failure:
        raise failure[0]


@contextlib.contextmanager
def ray_session(
    address: str | None, dashboard: bool = False, connect_timeout: float = 30.0
) -> Iterator[bool]:
    """Connect to ``address``, or start an embedded local Ray bound to localhost (no
    dashboard unless asked) and shut it down afterwards. A Ray already initialised in this
    process (a test's cluster, a notebook) is used as it is. Yields whether it is local."""
    if ray.is_initialized():
        yield False
        return
    preflight(address, dashboard)
    options = dict(log_to_driver=False, logging_level=logging.WARNING)
    since = uptime()
    try:
        if address is None:
            # "local": a new Ray, never one found on the machine (Ray's default joins
            # the last `ray start` or a test's cluster, which this command would not own)
            with loopback_only(), token_notice_silenced():
                ray.init(address="local", include_dashboard=dashboard, **options)
        else:
            probe(address, connect_timeout)
            _init_within(connect_timeout, address=address, **options)
    except RaybenchError:
        raise
    except (ConnectionError, RuntimeError, ValueError, OSError, ImportError) as exc:
        where = "start a local Ray" if address is None else f"connect to Ray at {address}"
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        hint = "" if address is None else "; check --address (is `ray start --head` running?)"
        raise RaybenchError(f"cannot {where}: {text}{hint}") from None
    signals.reassert()  # Ray's own SIGTERM handler exits with 1 and a stack dump
    reaper = start_reaper(since) if address is None else None
    try:
        yield address is None
    finally:
        ray.shutdown()
        if reaper is not None:
            reaper.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=30)


def uptime() -> float:
    """Seconds since boot (Linux), the clock process start times are counted on."""
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def start_reaper(since: float) -> subprocess.Popen | None:
    """``raybench.reaper``, watching this driver: if it dies without shutting Ray down,
    the embedded Ray's processes go with it (see there). Linux only."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "raybench.reaper", str(os.getpid()), f"{since:.2f}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the terminal's group: Ctrl-C is for the driver
    )


def check_cluster_devices(configs: Sequence[RunConfig]) -> None:
    """Runs that ask for CUDA on a cluster without GPUs, refused before any is submitted."""
    if any(c.device == "cuda" or c.cuda_graph for c in configs) and not (
        ray.cluster_resources().get("GPU")
    ):
        raise RaybenchError(
            "device=cuda or cuda_graph=true was asked for but the Ray cluster has no GPU; use "
            "--device auto or cpu and cuda_graph=false, or a cluster with GPU nodes"
        )
