"""What ``raybench replicate`` and ``raybench agree`` print: verdicts compared, as a Rich
table, JSON or Markdown (:func:`raybench.api.replicate` and :func:`raybench.api.agreement`
compute them)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from raybench.errors import RaybenchError

if TYPE_CHECKING:
    from rich.table import Table

    from raybench.report.agreement import Agreement


def check_output(output: Path | None) -> None:
    """``-o``'s file can be written: checked before any training or reading."""
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        where = "is a folder" if output.is_dir() else f"folder {output.parent} does not exist"
        raise RaybenchError(f"cannot write to {output}: {where}")


def emit(
    fmt: str,
    data: Any,
    markdown: Callable[[], str],
    table: Callable[[], Table],
    console: Console,
    output: Path | None,
) -> None:
    """``data`` as JSON, ``markdown()`` or the Rich ``table()``; text to ``output`` if given."""
    if fmt == "rich":
        console.print(table())
        return
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n" if fmt == "json" else markdown()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def show(rows: list[dict[str, Any]], console: Console, fmt: str, output: Path | None) -> None:
    from raybench.report.replication import replication_markdown, replication_table

    emit(
        fmt, rows, lambda: replication_markdown(rows), lambda: replication_table(rows), console,
        output,
    )  # fmt: skip


def show_agreement(agreement: Agreement, console: Console, fmt: str, output: Path | None) -> None:
    from raybench.report.agreement import agreement_markdown, agreement_table

    emit(
        fmt, agreement.record(), lambda: agreement_markdown(agreement),
        lambda: agreement_table(agreement), console, output,
    )  # fmt: skip
