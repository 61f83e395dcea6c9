"""``raybench agree``'s output: an experiment against a published one, as a Rich table,
JSON or Markdown (:func:`raybench.api.agreement` computes it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from raybench.report.agreement import Agreement


def show(agreement: Agreement, console: Console, fmt: str, output: Path | None) -> None:
    from raybench.report.agreement import agreement_markdown, agreement_table

    if fmt in ("json", "markdown"):
        text = (
            json.dumps(agreement.record(), indent=2, ensure_ascii=False) + "\n"
            if fmt == "json"
            else agreement_markdown(agreement)
        )
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        return
    console.print(agreement_table(agreement))
