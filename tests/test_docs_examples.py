"""The Python examples of the README, CONTRIBUTING and docs/ run as written: each page's
``python`` blocks not marked ``<!-- illustrative: why -->``, in order, in one namespace
(a later block uses what an earlier one made, as a reader's notebook would), in a folder
holding a copy of the committed stores. An example that raises fails its page's test with
the block's place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from doc_blocks import REPO, all_blocks

PYTHON = all_blocks("python")
PAGES = sorted({b.page for b in PYTHON if not b.illustrative})


def test_the_api_page_shows_every_function_of_the_api() -> None:
    """Every public function of ``raybench.api`` is named in an example that runs."""
    import raybench.api

    api = REPO / "docs" / "api.md"
    shown = "".join(b.text for b in PYTHON if b.page == api and not b.illustrative)
    every = "".join(b.text for b in PYTHON if b.page == api)
    functions = [n for n in raybench.api.__all__ if n[0].islower()]
    assert len(functions) >= 20
    missing = [n for n in functions if f"{n}(" not in every]
    assert not missing, f"docs/api.md has no example of {missing}"
    illustrative_only = [n for n in functions if f"{n}(" not in shown]
    assert sorted(illustrative_only) == ["replicate", "sweep"], illustrative_only


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(REPO / "benchmarks" / "results", root / "benchmarks" / "results")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_examples_of_a_page_run(page: Path, workspace: Path) -> None:
    namespace: dict = {"__name__": "__docs__"}
    saved = os.getcwd()
    os.chdir(workspace)
    try:
        for block in (b for b in PYTHON if b.page == page and not b.illustrative):
            code = compile(block.text, block.where, "exec")
            try:
                exec(code, namespace)
            except Exception as error:
                raise AssertionError(f"{block.where}: {type(error).__name__}: {error}") from error
    finally:
        os.chdir(saved)
