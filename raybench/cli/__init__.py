"""The ``raybench`` command line: Typer commands that wire the package together.

Every user-fixable problem ends as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from raybench.errors import RaybenchError

try:  # typer >= 0.25 carries its own copy of click
    from typer.exceptions import TyperException as UsageProblem
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException as UsageProblem  # type: ignore[assignment]

app = typer.Typer(
    name="raybench",
    help="Benchmark bilevel-optimization solvers for meta-learning on few-shot Omniglot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

OutOption = Annotated[
    Path, typer.Option("--out", help="Root folder of the results store.", show_default=True)
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with images_background.zip and images_evaluation.zip "
        "(else $RAYBENCH_DATA, else the user cache; downloaded if absent).",
    ),
]


def stdout() -> Console:
    """Wide enough for the report when piped to a file or a log (Rich assumes 80 columns)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    return console


@app.command("run")
def run_command(
    solvers: Annotated[
        str, typer.Option("--solvers", help="Comma-separated solver names, or 'all'.")
    ] = "all",
    preset: Annotated[
        str, typer.Option("--preset", help="Starting configuration: paper (Table 1) or smoke.")
    ] = "paper",
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a setting, KEY=VALUE (repeatable); solver options as "
            "SOLVER.KNOB=VALUE. See `raybench settings`.",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Number of seeds per solver.")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, help="First seed.")] = 0,
    steps: Annotated[int | None, typer.Option("--steps", help="Meta-steps (meta_steps).")] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (device).")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Experiment name (default: the preset's name)."),
    ] = None,
    out: OutOption = Path("outputs"),
    data_dir: DataDirOption = None,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Train runs again even if already stored.")
    ] = False,
    report: Annotated[bool, typer.Option(help="Print the report at the end.")] = True,
) -> None:
    """Train, evaluate and store each solver (and seed), then print the report."""
    from raybench.cli.commands import run

    run(
        solvers=solvers,
        preset=preset,
        settings=settings or [],
        seeds=seeds,
        first_seed=seed,
        steps=steps,
        device=device,
        experiment=experiment,
        out=out,
        data_dir=data_dir,
        rerun=rerun,
        show_report=report,
        console=stdout(),
    )


@app.command("report")
def report_command(
    experiment: Annotated[
        str | None,
        typer.Argument(help="Experiment name under --out, or a folder (default: the newest)."),
    ] = None,
    out: OutOption = Path("outputs"),
) -> None:
    """Print an experiment's results table from its Parquet store alone."""
    from raybench.cli.commands import report

    report(experiment, out, stdout())


@app.command("solvers")
def solvers_command() -> None:
    """List the registered solvers, their families and their own options."""
    from raybench.cli.commands import list_solvers

    list_solvers(stdout())


@app.command("settings")
def settings_command(
    preset: Annotated[str, typer.Option("--preset", help="Show this preset's values.")] = "paper",
) -> None:
    """List every setting with its value in a preset and its allowed range."""
    from raybench.cli.commands import list_settings

    list_settings(preset, stdout())


def _add_subcommands() -> None:
    from raybench.cli import data

    app.add_typer(data.app, name="data")


_add_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: Typer/Click errors and RaybenchError as one line, exit 2."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app(args=argv, prog_name="raybench", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except UsageProblem as exc:  # usage errors, bad option values
        message = exc.format_message()
        if message:  # empty when bare `raybench` printed the help
            err.print(f"raybench: error: {message}", markup=False)
        sys.exit(2)
    except RaybenchError as exc:
        err.print(f"raybench: error: {exc}", markup=False)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err.print("raybench: interrupted; finished runs are stored, unfinished ones are not")
        sys.exit(130)
