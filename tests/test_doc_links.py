"""Every relative link in the project's Markdown resolves: a file link to a file of the
repository, an anchor to a heading of its page (GitHub's heading ids). Links inside code
blocks are text, not links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
EXTERNAL = ("http://", "https://", "mailto:")


def pages(root: Path = REPO) -> list[Path]:
    """The Markdown a reader follows: the top level's, docs/ and the folders' READMEs."""
    found = [*root.glob("*.md"), *root.glob("docs/**/*.md"), *root.glob("*/README.md")]
    found += root.glob("benchmarks/*.md")
    hidden = {p for p in found if any(s.startswith(".") for s in p.relative_to(root).parts)}
    return sorted(set(found) - hidden)  # .venv's and .pytest_cache's are not ours


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    inside, kept = False, []
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            kept.append((number, line))
    return kept


def heading_ids(text: str) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation other than hyphens and
    underscores dropped, each space a hyphen; a repeated id gets -1, -2, ..."""
    ids: set[str] = set()
    for _, line in prose_lines(text):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        anchor, n = base, 0
        while anchor in ids:
            n += 1
            anchor = f"{base}-{n}"
        ids.add(anchor)
    return ids


def anchors(page: Path) -> set[str]:
    return heading_ids(page.read_text(encoding="utf-8"))


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """``page:line: target (why)`` for each relative link of ``page`` that leads nowhere."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for number, line in prose_lines(text):
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL):
                continue
            path_part, _, anchor = target.partition("#")
            linked = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not linked.is_relative_to(root.resolve()):
                broken.append(f"{where} (outside the repository)")
            elif not linked.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where} (no such heading)")
    return broken


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_file_link_and_a_broken_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Running (on Ray + Optuna)\n\n## Setup\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n"
        "[ok](docs/guide.md#running-on-ray--optuna) [ok](#top) ![ok](docs/guide.md)\n"
        "[gone](docs/missing.md) [bad anchor](docs/guide.md#set-up) [self](#nowhere)\n"
        "[out](../elsewhere.md) [web](https://example.org/x.md)\n"
        "```\n[in code](not/a/link.md)\n```\n"
    )
    assert pages(tmp_path) == [page, tmp_path / "docs" / "guide.md"]
    found = broken_links(page, tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == [
        "docs/missing.md (no such file)",
        "docs/guide.md#set-up (no such heading)",
        "#nowhere (no such heading)",
        "../elsewhere.md (outside the repository)",
    ]
    assert all(f.startswith("README.md:3: ") or f.startswith("README.md:4: ") for f in found)
