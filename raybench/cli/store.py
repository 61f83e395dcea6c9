"""``raybench store``: check an experiment's store and move bad files aside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from raybench.cli.options import OutOption, deprecated, experiment_option
from raybench.errors import RaybenchError

if TYPE_CHECKING:
    from raybench.results.store import ExperimentStore

app = typer.Typer(help="Check the results store and quarantine bad files.", no_args_is_help=True)


@app.callback()
def _store() -> None:
    """Check the results store and quarantine bad files."""


@app.command()
def check(
    experiment: Annotated[
        str | None,
        experiment_option(
            metavar="NAME",
            help="The experiment: a name under --out, or a folder (default: every one).",
        ),
    ] = None,
    positional: Annotated[str | None, typer.Argument(hidden=True, show_default=False)] = None,
    out: OutOption = Path("outputs"),
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Move every file found to <experiment>/quarantine/ (nothing is deleted).",
        ),
    ] = False,
) -> None:
    """List unreadable, duplicate, foreign, orphaned and leftover files of an experiment;
    exit code 1 if there are any (0 after --fix moved them all)."""
    from raybench.results.check import busy, check_store, quarantine
    from raybench.results.store import EXPERIMENT_TABLES, ExperimentStore

    console = Console(highlight=False, soft_wrap=True)
    if positional is not None:  # the old spelling: store check EXPERIMENT
        deprecated("`raybench store check EXPERIMENT`", "`raybench store check -e EXPERIMENT`")
        if experiment is not None and experiment != positional:
            raise RaybenchError(f"two experiments given ({positional!r} and -e {experiment!r})")
        experiment = positional
    if experiment is not None:
        stores = [_experiment(experiment, out)]
    else:
        if not out.is_dir():
            raise RaybenchError(f"no results store at {out}: nothing to check")
        stores = [
            ExperimentStore(p)
            for p in sorted(out.iterdir())
            if p.is_dir() and any((p / t).is_dir() for t in (*EXPERIMENT_TABLES, "progress"))
        ]
        if not stores:
            raise RaybenchError(f"no experiments under {out}: nothing to check")
    problems = 0
    for store in stores:
        findings = check_store(store)
        writer = busy(store)
        if not findings:
            console.print(f"{escape(str(store.root))}: ok")
            continue
        console.print(f"{escape(str(store.root))}: {len(findings)} file(s) to look at")
        for finding in findings:
            relative = finding.path.relative_to(store.root)
            console.print(f"  {finding.kind:<10} {escape(str(relative))}: {escape(finding.why)}")
        if writer is not None:
            console.print(f"  [yellow]a raybench command is writing here now: {escape(writer)}[/]")
        if not fix:
            problems += len(findings)
            continue
        if writer is not None:
            raise RaybenchError(
                f"{store.root} is being written by {writer}; run `raybench store check "
                f"-e {store.root} --fix` once it has finished"
            )
        for _, target in quarantine(store, findings):
            console.print(f"  moved to {escape(str(target.relative_to(store.root)))}")
    if problems:
        hint = "" if fix else "; --fix moves them to quarantine/"
        console.print(f"{problems} file(s) to look at{hint}")
        raise typer.Exit(1)


def _experiment(name: str, out: Path) -> ExperimentStore:
    from raybench.results.store import EXPERIMENT_TABLES, ExperimentStore, is_experiment

    for path in (out / name, Path(name)):
        if is_experiment(path):
            return ExperimentStore(path)
    for path in (out / name, Path(name)):
        if path.is_dir():
            raise RaybenchError(
                f"{path} is not a raybench experiment (no {'/'.join(EXPERIMENT_TABLES)} "
                "folder or training state): nothing to check"
            )
    raise RaybenchError(f"no experiment {name!r} under {out} (nor a folder of that name)")
