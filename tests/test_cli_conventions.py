"""One set of CLI conventions, through the real console script: -h and --help, --version,
flags shown as flags, one meaning per option name, presets listed on error, and the old
spellings still accepted for a release with one deprecation line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from cli_checks import run_main

import raybench
from raybench.config import PRESETS
from raybench.planning import default_seeds

RAYBENCH = Path(sys.executable).parent / "raybench"
COMMANDS = [
    ["run"], ["sweep"], ["sensitivity"], ["bench"], ["report"], ["compare"], ["plot"], ["solvers"],
    ["settings"], ["fidelity"], ["scaling"], ["data"], ["data", "check"], ["store"],
    ["store", "check"],
]  # fmt: skip
SMALL = [
    *("--set", "val_tasks=2", "--set", "test_tasks=4", "--set", "meta_batch=1"),
    *("--set", "hidden=8", "--set", "eval_every=2", "--steps", "2", "--backend", "inline"),
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(RAYBENCH), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The same, through the entry point in this process: for commands that stop at their
    input (no interpreter and torch start-up per call)."""
    return run_main(*args, cwd=cwd, env={"COLUMNS": "200"})


def deprecations(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "deprecated" in line]


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 and one error line (after any deprecation lines)."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.strip().splitlines() if line not in deprecations(proc)]
    assert len(errors) == 1 and errors[0].startswith("raybench: error: "), proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_version(tmp_path: Path) -> None:
    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"raybench {raybench.__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_short_and_long_help_everywhere_and_flags_take_no_value(
    tmp_path: Path, command: list[str]
) -> None:
    short = cli(*command, "-h", cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert "Usage: raybench" in short.stdout
    assert short.stdout == cli(*command, "--help", cwd=tmp_path).stdout
    assert "<bool>" not in short.stdout
    assert not re.search(r"<(str|int|float|path|list\[\w+\])>", short.stdout), short.stdout
    assert "-h" in short.stdout  # the help option lists its short form


def test_the_same_options_exist_under_the_same_names(tmp_path: Path) -> None:
    helps = {c: cli(c, "-h", cwd=tmp_path).stdout for c in ("run", "sweep", "sensitivity")}
    for text in helps.values():
        for option in ("--device", "--cpus-per-run", "--gpus-per-run", "--seeds", "--steps",
                       "--experiment", "--tracker", "--tracker-uri",
                       "--connect-timeout"):  # fmt: skip
            assert option in text
    for command in ("bench", "scaling"):
        text = cli(command, "-h", cwd=tmp_path).stdout
        assert "--timed-steps" in text and "--cpus-per-run" in text
        assert "--steps " not in text and "--threads" not in text  # old spellings hidden
    for command in ("report", "plot", "compare", "fidelity", "scaling", "bench"):
        assert "--experiment" in cli(command, "-h", cwd=tmp_path).stdout
    assert "--experiment" in cli("store", "check", "-h", cwd=tmp_path).stdout


PAPR = ["--preset", "papr"]


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--preset", "papr"],
        ["run", "--preset", "smoke,papr"],
        ["sweep", "--preset", "papr"],
        ["sensitivity", "--solver", "reptile", "--param", "outer_lr", "--values", "1", *PAPR],
        ["bench", "--preset", "papr"],
        ["settings", "--preset", "papr"],
        ["fidelity", "--preset", "papr"],
        ["scaling", "--preset", "papr"],
    ],
    ids=lambda c: c[0],
)
def test_an_unknown_preset_lists_the_presets(tmp_path: Path, command: list[str]) -> None:
    line = one_line_error(in_process(*command, cwd=tmp_path), "unknown preset 'papr'", "'paper'")
    assert "presets: " + ", ".join(PRESETS) in line


def test_one_seeds_rule() -> None:
    assert default_seeds(["paper"]) == default_seeds(["quick", "smoke"]) == 3
    assert default_seeds(["smoke"]) == 1


@pytest.mark.slow
def test_run_defaults_to_three_seeds_outside_smoke(tmp_path: Path) -> None:
    proc = cli("run", "--solvers", "fomaml", "--preset", "paper", *SMALL, "--no-report",
               "-e", "three", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = ds.dataset(tmp_path / "outputs" / "three" / "runs").to_table().to_pylist()
    assert sorted(r["seed"] for r in runs) == [0, 1, 2]


@pytest.mark.slow
def test_sensitivity_rows_name_the_value_and_take_device(tmp_path: Path) -> None:
    proc = cli(
        "sensitivity", "--solver", "reptile", "--param", "outer_lr", "--values", "0.001,0.1",
        "--preset", "smoke", "--device", "cpu", *SMALL, "-e", "st", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for value in ("0.001", "0.1"):  # progress lines (not a terminal) name the value
        assert re.search(rf"reptile outer_lr={value} seed 0: completed at step 2/2", proc.stdout)
    runs = ds.dataset(tmp_path / "outputs" / "st" / "runs").to_table().to_pylist()
    assert len(runs) == 2 and {r["device_setting"] for r in runs} == {"cpu"}
    bad = in_process("sweep", "--preset", "smoke", "--device", "tpu", cwd=tmp_path)
    one_line_error(bad, "device")


@pytest.mark.slow
def test_run_config_names_the_experiment_after_the_file(tmp_path: Path) -> None:
    config = tmp_path / "fast-fomaml.yaml"
    config.write_text("solver: fomaml\npreset: smoke\nsettings:\n  inner_lr: 0.2\n")
    proc = cli("run", "--config", str(config), *SMALL, "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = ds.dataset(tmp_path / "outputs" / "fast-fomaml" / "runs").to_table().to_pylist()
    assert row["inner_lr"] == 0.2 and row["source"] == "config"


# -- old spellings: still accepted for one release, with one deprecation line -------------


def test_old_experiment_argument_of_plot_report_and_store_check(tmp_path: Path) -> None:
    for command in (["plot"], ["report"], ["store", "check"]):
        proc = in_process(*command, "nothing-here", cwd=tmp_path)
        one_line_error(proc, "no experiment 'nothing-here'")  # the name reached the command
        (line,) = deprecations(proc)
        name = " ".join(command)
        assert line.startswith("raybench: warning: ") and f"raybench {name} -e" in line
        assert deprecations(in_process(*command, "-e", "nothing-here", cwd=tmp_path)) == []


@pytest.mark.parametrize(
    ("command", "old", "new"),
    [
        (["bench", "--preset", "smoke"], ["--steps", "2"], ["--timed-steps", "3"]),
        (["bench", "--preset", "smoke"], ["--threads", "2"], ["--cpus-per-run", "1"]),
        (["scaling", "--preset", "smoke"], ["--steps", "2"], ["--timed-steps", "3"]),
        (["scaling", "--preset", "smoke"], ["--threads", "2"], ["--cpus-per-run", "1"]),
        (["sweep", "--preset", "smoke"], ["--cpus-per-trial", "2"], ["--cpus-per-run", "1"]),
        (["sweep", "--preset", "smoke"], ["--gpus-per-trial", "0"], ["--gpus-per-run", "1"]),
    ],
    ids=lambda v: " ".join(v),
)
def test_old_option_names_map_to_the_new_ones(
    tmp_path: Path, command: list[str], old: list[str], new: list[str]
) -> None:
    """Given with a different value under the new name, the old name is named as its old
    spelling: the two are one option."""
    proc = in_process(*command, *old, *new, cwd=tmp_path)
    one_line_error(proc, f"{old[0]} is the old spelling of {new[0]}")
    (line,) = deprecations(proc)
    assert old[0] in line and new[0] in line


@pytest.mark.slow
def test_bench_old_spellings_still_work(tmp_path: Path) -> None:
    proc = cli(
        "bench", "--solvers", "fomaml", "--preset", "smoke", "--no-reference", "--warmup", "0",
        "--steps", "2", "--threads", "1", "-e", "b", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(deprecations(proc)) == 2
    (row,) = ds.dataset(tmp_path / "outputs" / "b" / "bench").to_table().to_pylist()
    assert (row["timed_steps"], row["threads"]) == (2, 1)


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "--solvers", "fomaml"], "; finished results are stored, --resume continues"),
        (["sweep", "--solvers", "all"], "; finished results are stored, --resume continues"),
        (["replicate", "-e", "p"], "; finished runs are stored, the same command continues"),
        (["bench"], ""),
        (["fidelity"], ""),
    ],
)
def test_an_interruption_says_how_that_command_continues(argv: list[str], hint: str) -> None:
    """Only run and sweep have --resume; replicate continues when run again."""
    from raybench.cli import continue_hint

    assert continue_hint(argv) == hint


def test_each_flag_is_declared_once() -> None:
    """Every ``--flag`` of every command is written in exactly one ``typer.Option`` call
    under ``raybench/cli`` (a shared option, or a factory a command calls with its own
    help): one name, one declaration, read from the source (nothing imported)."""
    import ast
    from collections import Counter

    declared: Counter[str] = Counter()
    for path in (Path(__file__).resolve().parents[1] / "raybench" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "Option" or ast.unparse(node.func.value) != "typer":
                continue
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            declared.update(n for n in names if isinstance(n, str) and n.startswith("--"))
    assert {"--experiment", "--cpus-per-run", "--format", "--out", "--seeds"} <= set(declared)
    assert {flag: n for flag, n in declared.items() if n > 1} == {}


def test_execution_defaults_are_read_from_one_object() -> None:
    """Every command's --log-every, --connect-timeout, --max-retries, --backend and
    --cpus-per-run default (where it has one) is the execution options' default, and so are
    the API's: written once, in ``raybench.execution.options``."""
    import inspect

    import typer

    from raybench import api
    from raybench.cli import app
    from raybench.execution.options import DEFAULTS

    names = ("log_every", "connect_timeout", "max_retries", "backend", "cpus_per_run")
    seen = 0
    for name, command in typer.main.get_command(app).commands.items():
        for param in getattr(command, "params", []):
            if param.name in names and param.default is not None:
                assert param.default == getattr(DEFAULTS, param.name), (name, param.name)
                seen += 1
    assert seen >= 10  # run, sweep, sensitivity and replicate declare them
    for function in (api.run, api.sensitivity, api.sweep, api.replicate):
        for param in inspect.signature(function).parameters.values():
            if param.name in names and param.default is not inspect.Parameter.empty:
                assert param.default == getattr(DEFAULTS, param.name), (function, param.name)


def test_measuring_defaults_are_read_from_one_place() -> None:
    """fidelity's and scaling's defaults (tasks, sweeps, inner steps, warm-up) are the
    measurements' own, in the CLI's options, its help, the API and the measurement itself:
    written once, in ``raybench.measurements.defaults``."""
    import inspect

    import typer

    from raybench import api
    from raybench.cli import app
    from raybench.measurements import defaults
    from raybench.measurements.fidelity import FidelityStudy
    from raybench.measurements.scaling import scaling_table

    commands = typer.main.get_command(app).commands
    fidelity = {p.name: p for p in commands["fidelity"].params}
    scaling = {p.name: p for p in commands["scaling"].params}
    assert fidelity["tasks"].default == defaults.DEFAULT_TASKS
    for solver, (knob, values) in defaults.DEFAULT_SWEEPS.items():
        assert f"{solver}.{knob}=" in fidelity["sweeps"].help
        assert ",".join(f"{v:g}" for v in values) in fidelity["sweeps"].help
    assert scaling["inner_steps"].default == ",".join(map(str, defaults.DEFAULT_INNER_STEPS))
    assert scaling["warmup"].default == defaults.DEFAULT_WARMUP

    def default(function, name: str):
        return inspect.signature(function).parameters[name].default

    assert default(api.fidelity, "tasks") == default(FidelityStudy, "n_tasks")
    assert default(api.fidelity, "tasks") == defaults.DEFAULT_TASKS
    assert default(api.scaling, "inner_steps") == default(scaling_table, "inner_steps")
    assert default(api.scaling, "warmup") == default(scaling_table, "warmup")
    assert default(scaling_table, "inner_steps") == defaults.DEFAULT_INNER_STEPS


def test_every_flags_range_is_the_apis() -> None:
    """Issue 46, case 7: each numeric flag's min and max, in every command, is the range
    the API checks the same keyword by (raybench.limits): one declaration."""
    import typing

    from raybench.api.parameters import declared_ranges
    from raybench.cli import app

    compared = 0
    for info in app.registered_commands:
        hints = typing.get_type_hints(info.callback, include_extras=True)
        for name, hint in hints.items():
            for option in getattr(hint, "__metadata__", ()):
                low, high = getattr(option, "min", None), getattr(option, "max", None)
                if (low is None and high is None) or name.startswith("old_"):
                    continue
                assert declared_ranges(info.name)[name] == (low, high), (info.name, name)
                compared += 1
    assert compared >= 40
