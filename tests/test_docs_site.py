"""The documentation site builds from docs/ with ``mkdocs build --strict`` (offline: the
theme and the search index need nothing fetched), and strict means what it says: the same
build fails on a page with a link that leads nowhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    proc = build(REPO, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = sorted(p.relative_to(REPO / "docs") for p in (REPO / "docs").glob("*.md"))
    for page in pages:  # every page of docs/ is in the site (and in its navigation)
        built = tmp_path / "site" / page.with_suffix("") / "index.html"
        if page.stem == "index":
            built = tmp_path / "site" / "index.html"
        assert built.is_file(), page


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "mkdocs.yml", copy)
    shutil.copytree(REPO / "docs", copy / "docs")
    page = copy / "docs" / "solvers.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    proc = build(copy, tmp_path / "site")
    assert proc.returncode != 0 and "no-such-page.md" in proc.stderr, proc.stderr[-3000:]
