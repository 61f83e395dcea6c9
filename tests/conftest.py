"""Shared fixtures: an isolated cache folder and the real Omniglot, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raybench.data import OmniglotImages, load_omniglot

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def raybench_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never touch the user's cache; share one preprocessed cache with every test and subprocess.

    RAYBENCH_DATA is made absolute (CI gives it relative to the repo root) so that subprocesses
    started from another folder still find the data.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("RAYBENCH_CACHE", str(tmp_path_factory.mktemp("raybench-cache")))
    data = os.environ.get("RAYBENCH_DATA", "").strip()
    if data:
        path = Path(data).expanduser()
        mp.setenv("RAYBENCH_DATA", str(path if path.is_absolute() else REPO_ROOT / path))
    elif (REPO_ROOT.parent / "shared" / "data" / "omniglot").is_dir():
        mp.setenv("RAYBENCH_DATA", str(REPO_ROOT.parent / "shared" / "data" / "omniglot"))
    yield
    mp.undo()


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
