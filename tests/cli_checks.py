"""What the CLI tests check again and again: a one-line error, and the processes a
command left behind; the CLI's entry point run in this process, or started in its own
to be interrupted."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

RAYBENCH = Path(sys.executable).parent / "raybench"  # the console script pip installed


# Kernels other than the native ones that torch honours on every x86-64 CPU: ATen's scalar
# kernels, oneDNN at SSE4.1, MKL at SSE4.2 (what a user's CPU may round differently).
OTHER_KERNELS = {
    "ATEN_CPU_CAPABILITY": "default",
    "DNNL_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
}


def kernel_env(other: bool) -> dict[str, str]:
    """This environment for a fresh process (kernels are chosen when torch loads): with the
    native kernels, or with :data:`OTHER_KERNELS`, whatever the suite itself runs under."""
    from raybench.runtime import KERNEL_VARIABLES

    native = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}
    return {**native, **OTHER_KERNELS} if other else native


def ctrl_c_as_usual() -> None:
    """``preexec_fn`` of a command a test interrupts: a suite started in the background
    (``nohup ... &``) ignores SIGINT and its children inherit that, so the command must
    be given Ctrl-C's usual meaning back to see it as a terminal sends it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


STARTED: list[subprocess.Popen] = []  # what start_raybench started, for end_started()


def start_raybench(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    """``raybench ARGS`` started in its own process, to be interrupted: Ctrl-C (SIGINT)
    has its usual meaning there, and its output is piped for the test to read."""
    proc = subprocess.Popen(
        [str(RAYBENCH), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=ctrl_c_as_usual, **kwargs,
    )  # fmt: skip
    STARTED.append(proc)
    return proc


def end_started() -> None:
    """After each test: a command the test left running (it failed before the command
    ended) is killed and its pipes closed, so the next test on this worker neither shares
    the machine with it nor inherits its unclosed-file warnings."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def run_main(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``raybench ARGS`` through the console script's entry point (:func:`raybench.cli.main`)
    in this process: its exit code, standard output and standard error as a finished
    process would give them, without a new interpreter importing torch again (seconds a
    call). For commands that stop at their input or read a store; never for one that
    starts Ray or trains. An exception main() lets out fails the test with its traceback."""
    from raybench.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_term = signal.getsignal(signal.SIGTERM)
    os.environ.update(env or {})
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        signal.signal(signal.SIGTERM, saved_term)
    return subprocess.CompletedProcess(["raybench", *args], code, out.getvalue(), err.getvalue())


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit code 2, no traceback, and exactly one ``raybench: error: ...`` line on stderr
    holding every word; that line."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def descendants(root: int) -> dict[int, str]:
    """Every descendant of process ``root`` (never another user's Ray): pid -> its command
    line, arguments separated by spaces (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            found[pid] = command.decode(errors="replace")
            todo.append(pid)
    return found


# The arguments each API function needs beyond one under test, for calls that a check
# refuses before anything runs (tests/test_api.py, tests/test_hostile_properties.py).
API_NEEDS = {
    "compare": {"experiment": "x", "a": "maml", "b": "fomaml"},
    "bench_ab": {"solvers": "maml", "ab": ["hidden=32"]},
    "sensitivity": {"solver": "maml", "param": "inner_lr", "values": "0.1,0.2"},
    "replicate": {"published": "x"},
    "agreement": {"published": "x"},
    "replication": {"published": "x"},
}
