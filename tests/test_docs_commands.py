"""Every ``raybench`` command the README, CONTRIBUTING and docs/ show is a command that
works: each one parses against the real command tree (its subcommand, every option and
every value's type), and each shell block not marked ``<!-- illustrative: why -->`` is run
as written, command by command, through the CLI's entry point, in a folder holding a copy
of the committed stores. A block that trains for minutes or needs a cluster says so in its
mark, and names the test that runs its command at the smoke preset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_checks import run_main
from doc_blocks import REPO, Block, all_blocks, is_placeholder, raybench_commands

SHELL = all_blocks("sh")


def parse(args: list[str]) -> str:
    """``args`` parsed by the CLI's command tree without running anything: the command's
    name, or a UsageProblem naming what does not parse."""
    from raybench.cli import _command

    command = _command()
    context = command.make_context("raybench", list(args))
    while hasattr(command, "resolve_command"):  # a group: `raybench data check`
        rest = [*context._protected_args, *context.args]
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)
    return command.name


def test_parse_refuses_what_the_cli_refuses() -> None:
    from raybench.cli import UsageProblem

    assert parse(["report", "-e", "x", "--format", "json"]) == "report"
    assert parse(["data", "check"]) == "check"
    for bad in (["report", "--bogus"], ["run", "--seeds", "x"], ["nosuch"]):
        with pytest.raises(UsageProblem):
            parse(bad)


def test_the_docs_show_commands_of_both_kinds() -> None:
    """The blocks this module finds: if the reader of blocks broke, there would be none."""
    assert len([b for b in SHELL if b.illustrative]) >= 8
    assert len([b for b in SHELL if not b.illustrative]) >= 8
    assert sum(len(raybench_commands(b)) for b in SHELL) >= 30


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.where)
def test_every_command_shown_parses(block: Block) -> None:
    for args in raybench_commands(block):
        if not is_placeholder(args):
            parse(args)  # raises, naming the option, where a command no longer parses


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with what the runnable commands read: the committed stores (copied: a
    report writes summary.parquet beside the runs) and the configurations."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "benchmarks" / "results", root / "benchmarks" / "results")
    shutil.copytree(REPO / "configs", root / "configs")
    return root


RUNNABLE = [b for b in SHELL if not b.illustrative]


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_every_command_not_marked_illustrative_runs(block: Block, workspace: Path) -> None:
    commands = raybench_commands(block)
    assert commands, f"{block.where}: a shell block without a raybench command is illustrative"
    lines = [ln for ln in block.text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert all(ln.startswith("raybench ") for ln in lines), (
        f"{block.where}: a runnable block holds raybench commands only; mark it illustrative"
    )
    for args in commands:
        assert not is_placeholder(args), f"{block.where}: {args} has a stand-in"
        proc = run_main(*args, cwd=workspace)
        assert proc.returncode == 0, f"{block.where}: raybench {' '.join(args)}\n{proc.stderr}"
