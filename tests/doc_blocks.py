"""The fenced code blocks of the project's Markdown, as the docs tests read them: each with
its page, line, language and whether it is marked illustrative (an HTML comment
``<!-- illustrative: why -->`` among the comment lines right above its fence)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```|~~~)\s*([\w-]*)")
ILLUSTRATIVE = re.compile(r"^<!-- illustrative: \S.* -->$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    illustrative: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    """The Markdown a user reads for how to use raybench: README, CONTRIBUTING, docs/."""
    found = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted(REPO.glob("docs/**/*.md"))]
    return [p for p in found if p.is_file()]


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        above, j = [], i - 1
        while j >= 0 and lines[j].startswith("<!--"):
            above.append(lines[j])
            j -= 1
        end = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(match[1]))
        found.append(
            Block(
                page=page,
                line=i + 1,
                language=match[2],
                text="\n".join(lines[i + 1 : end]) + "\n",
                illustrative=any(ILLUSTRATIVE.match(a) for a in above),
            )
        )
        i = end + 1
    return found


def all_blocks(language: str) -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.language == language]


def raybench_commands(block: Block) -> list[list[str]]:
    """The ``raybench`` commands of a shell block, each as its arguments after ``raybench``
    (comments dropped; in ``a && b && raybench ...`` the raybench part)."""
    commands = []
    for line in block.text.splitlines():
        part: list[str] = []
        for word in [*shlex.split(line, comments=True), "&&"]:
            if word != "&&":
                part.append(word)
                continue
            if part and part[0] == "raybench":
                commands.append(part[1:])
            part = []
    return commands


def is_placeholder(args: list[str]) -> bool:
    """A command written with a stand-in (``<your experiment>``, ``...``) is not a command
    that can be parsed as it stands."""
    return any(a.startswith("<") or a == "..." for a in args)
