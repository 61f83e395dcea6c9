"""The options every command shares, declared once so that one name means one thing.

The conventions: ``-e/--experiment`` names the experiment (a name under ``--out``, or a
folder) in every command; ``--steps`` is always meta-steps of training (``--timed-steps``
for what bench and scaling time); ``--cpus-per-run``/``--gpus-per-run`` are the resources of
one run (or one trial, or one measuring process); ``--seeds`` is one rule everywhere
(:func:`raybench.planning.default_seeds`); ``-h`` and ``--help`` everywhere; flags show no
value. Old spellings still work for one release, with one deprecation line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from raybench.api.parameters import API_FLAGS as API_FLAGS  # where the CLI finds it
from raybench.errors import RaybenchError
from raybench.limits import bounds

HELP_NAMES = ["-h", "--help"]


# Each flag is declared by one factory (a test counts them): the shared options below use
# them, and a command whose help or range legitimately differs calls them with its own.


def backend_option(**kwargs: Any) -> Any:
    """``--backend``: each command gives its help."""
    return typer.Option("--backend", **kwargs)


def cpus_per_run_option(**kwargs: Any) -> Any:
    """``--cpus-per-run``: each command gives its help."""
    return typer.Option("--cpus-per-run", **kwargs)


def data_dir_option(**kwargs: Any) -> Any:
    """``--data-dir``: each command gives its help."""
    return typer.Option("--data-dir", **kwargs)


def experiment_option(**kwargs: Any) -> Any:
    """``--experiment`` (-e): each command gives its help."""
    return typer.Option("--experiment", "-e", **kwargs)


def format_option(**kwargs: Any) -> Any:
    """``--format``: each command gives its help."""
    return typer.Option("--format", **kwargs)


def gpus_per_run_option(**kwargs: Any) -> Any:
    """``--gpus-per-run``: each command gives its help."""
    return typer.Option("--gpus-per-run", **kwargs)


def output_option(**kwargs: Any) -> Any:
    """``--output`` (-o): each command gives its help."""
    return typer.Option("--output", "-o", **kwargs)


def preset_option(**kwargs: Any) -> Any:
    """``--preset``: each command gives its help."""
    return typer.Option("--preset", **kwargs)


def resume_option(**kwargs: Any) -> Any:
    """``--resume``: each command gives its help."""
    return typer.Option("--resume", **kwargs)


def seed_option(**kwargs: Any) -> Any:
    """``--seed``: each command gives its help."""
    return typer.Option("--seed", **kwargs)


def seeds_option(**kwargs: Any) -> Any:
    """``--seeds``: each command gives its help."""
    return typer.Option("--seeds", **kwargs)


def steps_option(**kwargs: Any) -> Any:
    """``--steps``: each command gives its help."""
    return typer.Option("--steps", **kwargs)


def timed_steps_option(**kwargs: Any) -> Any:
    """``--timed-steps``: each command gives its help."""
    return typer.Option("--timed-steps", **kwargs)


def warmup_option(**kwargs: Any) -> Any:
    """``--warmup``: each command gives its help."""
    return typer.Option("--warmup", **kwargs)


OutOption = Annotated[
    Path,
    typer.Option("--out", metavar="DIR", help="Root folder of the results store."),
]
DataDirOption = Annotated[
    Path | None,
    data_dir_option(
        metavar="DIR",
        help="Folder with images_background.zip and images_evaluation.zip "
        "(else $RAYBENCH_DATA, else the user cache; downloaded if absent).",
    ),
]
SolversOption = Annotated[
    str | None,
    typer.Option("--solvers", metavar="NAMES", help="Comma-separated solver names, or 'all'."),
]
PresetOption = Annotated[
    str | None,
    preset_option(
        metavar="NAME",
        help="Starting configuration: paper (Table 1), quick, smoke, 5w5s, 20w1s, 20w5s, "
        "literature-5w1s, ... (`raybench settings` lists them).",
    ),
]
SettingsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a setting (repeatable); solver options as SOLVER.KNOB=VALUE. "
        "See `raybench settings`.",
    ),
]
SeedsOption = Annotated[
    int | None,
    seeds_option(
        **bounds("seeds"),
        metavar="N",
        help="Seeds per configuration (default: 3, the fewest that let the report's "
        "intervals and significance tests see seed-to-seed variation; 1 with the smoke "
        "preset, which only checks that things run).",
        show_default=False,
    ),
]
MetaStepsOption = Annotated[
    int | None,
    steps_option(**bounds("steps"), metavar="N", help="Meta-steps of training (meta_steps)."),
]
ExperimentOption = Annotated[
    str | None,
    experiment_option(metavar="NAME", help="The experiment: a name under --out, or a folder."),
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Write the experiment into a folder that holds other files or is a system "
        "folder (refused without it).",
    ),
]
DeviceOption = Annotated[
    str | None,
    typer.Option("--device", metavar="DEVICE", help="auto, cpu or cuda (setting `device`)."),
]
CpusOption = Annotated[
    float | None,
    cpus_per_run_option(
        **bounds("cpus_per_run"),
        metavar="N",
        help="CPUs of each run: its torch threads (the whole part, at least 1) and, on Ray, "
        "the CPUs it reserves (a fraction lets runs share a core). Default 1.",
        show_default=False,
    ),
]
GpusOption = Annotated[
    float | None,
    gpus_per_run_option(
        **bounds("gpus_per_run"),
        metavar="FRACTION",
        help="GPU share of each run (e.g. 0.25). Default: the visible GPUs divided among "
        "the concurrent runs; 0 without GPUs.",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        envvar="RAY_ADDRESS",
        show_envvar=False,
        metavar="ADDRESS",
        help="Ray cluster to use: 'auto', HOST:PORT or ray://HOST:PORT (also read from "
        "RAY_ADDRESS). Default: start a new local Ray (bound to localhost) for this "
        "command and stop it afterwards, even when another Ray runs on this machine.",
    ),
]
DashboardOption = Annotated[
    bool, typer.Option("--dashboard", help="Start the local Ray's dashboard (on localhost).")
]
ConnectTimeoutOption = Annotated[
    float,
    typer.Option(
        "--connect-timeout",
        **bounds("connect_timeout"),
        metavar="SECONDS",
        help="Seconds to reach the Ray cluster at --address before giving up.",
    ),
]
RetriesOption = Annotated[
    int,
    typer.Option(
        "--max-retries",
        **bounds("max_retries"),
        metavar="N",
        help="Retries of a run whose worker dies.",
    ),
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--max-concurrent",
        **bounds("max_concurrent"),
        metavar="N",
        help="Most runs training at once.",
    ),
]
LogEveryOption = Annotated[
    float,
    typer.Option(
        "--log-every",
        **bounds("log_every"),
        metavar="SECONDS",
        help="When the output is not a terminal (a log, tee, nohup): a plain progress line "
        "per run (step, validation accuracy, ms/step, ETA) and the overall ETA at least "
        "this often; 0: only at evaluations and when runs end.",
    ),
]
TrackerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tracker",
        metavar="NAME",
        help="Also log every run's settings, curves and results to an experiment tracker "
        "(repeatable): mlflow (a SQLite store, <experiment>/mlflow.db, or --tracker-uri) or "
        "tensorboard (<experiment>/tensorboard/). Needs pip install 'raybench\\[mlflow]' or "
        "'raybench\\[tensorboard]'.",
    ),
]
TrackerUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracker-uri",
        metavar="URI",
        help="MLflow tracking URI for --tracker mlflow, e.g. http://HOST:5000 or "
        "sqlite:///FILE.db (default: sqlite:///<experiment>/mlflow.db).",
    ),
]


def hidden_option(*names: str, **kwargs: Any) -> Any:
    """An old spelling: accepted, not shown in the help."""
    return typer.Option(*names, hidden=True, show_default=False, **kwargs)


def deprecated(old: str, new: str) -> None:
    """One line on stderr: the old spelling works for this release only."""
    print(
        f"raybench: warning: {old} is deprecated and will be removed in the next release; "
        f"use {new}",
        file=sys.stderr,
        flush=True,
    )


T = TypeVar("T")


def renamed(new_name: str, new: T | None, old_name: str, old: T | None, command: str) -> T | None:
    """The value of an option given under its new or (deprecated) old name."""
    if old is None:
        return new
    deprecated(f"`raybench {command} {old_name}`", new_name)
    if new is not None and new != old:
        raise RaybenchError(f"{old_name} is the old spelling of {new_name}: give {new_name} only")
    return old


def tidy_help(command: Any) -> None:
    """Typer shows ``<bool>`` after every flag (``--rerun <bool>``), though a flag takes no
    value, a type after each argument's name (``A <str>``), and old spellings kept as
    hidden arguments in the usage line: give every flag, the help options included, an
    empty metavar, show arguments by name only, and leave hidden arguments out of the
    usage. Recurses into sub-commands."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        if param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None  # its metavar says what it is
            if getattr(param, "hidden", False):
                param.get_usage_pieces = lambda ctx: []
    ctx = command.context_class(command, help_option_names=HELP_NAMES)
    help_option = command.get_help_option(ctx)  # made once per command, then reused
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
