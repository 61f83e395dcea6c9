"""Shared fixtures: an isolated cache folder and the real Omniglot, built once per session.

The suite runs on two pytest-xdist workers (the README's test command). Tests that start a
Ray instance are marked ``ray``; those of one module run one after another on one worker
(they share module and session fixtures, some an in-process Ray), the rest are spread.
Each worker's torch (and every process it starts) uses one thread: two workers with two
threads each on two cores would be many times slower.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_checks import end_started
from rendezvous import Rendezvous

from raybench.data import OmniglotImages, load_omniglot
from raybench.rendezvous import ENV as RENDEZVOUS_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # for the subprocesses; torch reads it at import
    os.environ.pop("COLUMNS", None)  # xdist says 80; a pipe has no width, as without it
    os.environ.pop("LINES", None)
    import torch

    torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``ray`` (they start a Ray instance) of one module share one worker,
    unless the module says its tests share nothing (``RAY_TESTS_SHARE_NOTHING = True``:
    each starts its own Ray through the CLI), when each is a group of its own. Those go
    first (the sweeps and kills, the longest tests), then the other slow tests, so the
    longest start first and neither worker is left with a long tail (the suite's wall
    time is the busier worker's)."""
    alone = {id(i) for i in items if getattr(i.module, "RAY_TESTS_SHARE_NOTHING", False)}
    for index, item in enumerate(items):
        if item.get_closest_marker("ray") is not None:
            group = f"ray-{item.path.stem}" + (f"-{index}" if id(item) in alone else "")
            item.add_marker(pytest.mark.xdist_group(group))
    # stable: collection order within each rank
    items.sort(key=lambda i: (id(i) not in alone, i.get_closest_marker("slow") is None))


def pytest_collection_finish(session: pytest.Session) -> None:
    """xdist groups by a suffix of the test ids; where a pytest ignores it, stop loudly."""
    if not (os.environ.get("PYTEST_XDIST_WORKER") and session.config.getvalue("loadgroup")):
        return
    lost = [i.nodeid for i in session.items if i.get_closest_marker("ray") is not None]
    lost = [n for n in lost if "@ray-" not in n]
    if lost:
        raise pytest.UsageError(
            f"--dist loadgroup is not grouping ({lost[0]} has no @ray-): this pytest and "
            "pytest-xdist do not work together (pytest-xdist issue 1386); use pytest<9.2"
        )


@pytest.fixture(scope="session", autouse=True)
def raybench_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never touch the user's cache; share one preprocessed cache with every test and subprocess.

    RAYBENCH_DATA is made absolute (CI gives it relative to the repo root) so that subprocesses
    started from another folder still find the data.
    """
    mp = pytest.MonkeyPatch()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one cache for all workers (written atomically)
        cache = tmp_path_factory.getbasetemp().parent / "raybench-cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("raybench-cache")
    mp.setenv("RAYBENCH_CACHE", str(cache))
    # this worker's rendezvous folder (tests/rendezvous.py), in every process it starts,
    # Ray's included: a gate there is set and cleared by the one test using it
    mp.setenv(RENDEZVOUS_ENV, str(tmp_path_factory.mktemp("rendezvous")))
    data = os.environ.get("RAYBENCH_DATA", "").strip()
    if data:
        path = Path(data).expanduser()
        mp.setenv("RAYBENCH_DATA", str(path if path.is_absolute() else REPO_ROOT / path))
    elif (REPO_ROOT.parent / "shared" / "data" / "omniglot").is_dir():
        mp.setenv("RAYBENCH_DATA", str(REPO_ROOT.parent / "shared" / "data" / "omniglot"))
    yield
    mp.undo()


@pytest.fixture
def ctrl_c(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Ctrl-C with its usual meaning (a suite started in the background ignores it); the
    exceptions finalisers dropped are collected instead of failing the test."""
    dropped: list = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield dropped
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def no_command_left_running() -> Iterator[None]:
    """A command a failed test started is not left to run into the next test."""
    yield
    end_started()


@pytest.fixture
def rendezvous() -> Iterator[Rendezvous]:
    """Gates that hold runs at chosen steps, for a fault at a known point; all opened
    and removed after the test, so no run of another test ever waits."""
    folder = Path(os.environ[RENDEZVOUS_ENV])
    meeting = Rendezvous(folder)
    yield meeting
    meeting.clear()
    for path in folder.iterdir():
        path.unlink()


@pytest.fixture(scope="session")
def omniglot() -> OmniglotImages:
    """The real data set (1623 x 20 x 28 x 28); the first use builds the session cache."""
    return load_omniglot()


@pytest.fixture(params=["vmap", "loop"])
def both_batchings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a solver test with tasks mapped by vmap (the GPU path, hand-written batch norm)
    and by a loop (the CPU path, native batch norm): the math must hold on both."""
    import helpers

    monkeypatch.setattr(helpers, "BATCHING", request.param)
    return request.param
