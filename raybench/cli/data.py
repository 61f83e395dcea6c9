"""``raybench data``: see where Omniglot comes from and prepare its cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from raybench.cli.options import data_dir_option

app = typer.Typer(help="Find, verify and preprocess the Omniglot data.", no_args_is_help=True)


@app.callback()
def _data() -> None:
    """Find, verify and preprocess the Omniglot data."""


@app.command()
def check(
    data_dir: Annotated[
        Path | None,
        data_dir_option(
            help="Folder holding images_background.zip and images_evaluation.zip "
            "(default: $RAYBENCH_DATA, then the cache folder).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Show where Omniglot was found, its counts and the cache; build the cache if needed."""
    from raybench.data import check_omniglot  # torch: not for --help

    report = check_omniglot(data_dir)
    console = Console()

    where = Table(title="Where raybench looked (in order)")
    where.add_column("place")
    where.add_column("path")
    where.add_column("found")
    for loc in report.locations:
        where.add_row(loc.label, str(loc.path) if loc.path else "-", loc.found)
    console.print(where)

    counts = Table(title="Content")
    for name in ("file", "alphabets", "characters", "images", "ok"):
        counts.add_column(name, justify="left" if name == "file" else "right")
    for s in report.splits:
        counts.add_row(
            s.file,
            f"{s.alphabets}/{s.expected_alphabets}",
            f"{s.characters}/{s.expected_characters}",
            str(s.images),
            "yes" if s.ok else "NO",
        )
    if report.splits:
        console.print(counts)

    cache = Table(title="Preprocessed cache", show_header=False)
    cache.add_column("key")
    cache.add_column("value")
    cache.add_row("source", report.source)
    cache.add_row("cache folder", str(report.cache_dir))
    cache.add_row("cache before", report.cache_before)
    cache.add_row("cache", report.cache_action)
    cache.add_row("tensor", f"uint8 {tuple(report.shape)}")
    cache.add_row(
        "characters",
        f"{report.n_characters} ({report.n_background} background, "
        f"{report.n_characters - report.n_background} evaluation)",
    )
    cache.add_row("load", f"{report.load_seconds:.2f} s")
    cache.add_row("cached load", f"{report.cached_load_seconds:.3f} s")
    console.print(cache)
    console.print("Verified:")
    for line in report.verified:
        console.print(f"  - {escape(str(line))}")
