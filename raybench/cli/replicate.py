"""``raybench replicate``'s output: the verdicts compared, as a Rich table, JSON or the
README's Markdown (:func:`raybench.api.replicate` computes them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console


def show(rows: list[dict[str, Any]], console: Console, fmt: str, output: Path | None) -> None:
    from raybench.report.replication import replication_markdown, replication_table

    if fmt in ("json", "markdown"):
        text = (
            json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
            if fmt == "json"
            else replication_markdown(rows)
        )
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        return
    console.print(replication_table(rows))
