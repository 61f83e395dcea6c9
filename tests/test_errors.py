"""Clean errors instead of tracebacks or hangs, through the real entry point: one line
``raybench: error: ...`` naming the problem and what to do, exit code 2, nothing written."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from cli_checks import one_line_error, run_main

RAYBENCH = Path(sys.executable).parent / "raybench"
SMOKE = ("run", "--preset", "smoke", "--solvers", "fomaml", "--no-report")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [str(RAYBENCH), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def nothing_written(cwd: Path) -> None:
    written = [p for p in (cwd / "outputs").rglob("*")] if (cwd / "outputs").exists() else []
    assert written == [], written


@pytest.mark.ray
@pytest.mark.parametrize("given", ["flag", "RAY_ADDRESS"])
def test_an_unreachable_address_fails_fast(tmp_path: Path, given: str) -> None:
    """Ray alone retries 127.0.0.1:1 for about 14 minutes. RAY_ADDRESS is --address."""
    if given == "flag":
        proc = cli(*SMOKE, "--address", "127.0.0.1:1", cwd=tmp_path, timeout=600)
    else:
        proc = cli(*SMOKE, cwd=tmp_path, env={"RAY_ADDRESS": "127.0.0.1:1"}, timeout=600)
    one_line_error(proc, "127.0.0.1:1", "ray start --head")
    nothing_written(tmp_path)


@pytest.mark.ray
def test_without_an_address_a_new_local_ray_even_after_a_ray_start(tmp_path: Path) -> None:
    """Ray's own default joins the last `ray start` on the machine (recorded in its temp
    folder); a command without --address starts and owns a Ray of its own instead."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))  # Ray's socket paths are short
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
        env = {"RAY_TMPDIR": str(ray_tmp), "RAY_ADDRESS": ""}
        proc = cli(*SMOKE, "--steps", "2", cwd=tmp_path, env=env, timeout=600)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "outputs").glob("*/runs/*.parquet"))) == 1


@pytest.mark.ray
def test_an_address_that_is_not_ray_gives_up_after_the_timeout(tmp_path: Path) -> None:
    """Something listens there but never speaks Ray's protocol."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def accept() -> None:
        held = []
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
        for conn in held:
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{server.getsockname()[1]}"
        proc = cli(*SMOKE, "--address", address, "--connect-timeout", "3", cwd=tmp_path)
    finally:
        stop.set()
        thread.join()
        server.close()
    one_line_error(proc, address)
    nothing_written(tmp_path)


# The CLI's entry point with Ray's scan of this machine's processes for a running GCS
# hidden: `--address auto` connects to any Ray it finds there (another test's, another
# user's), so "no cluster" is only reproducible when that scan finds none.
NO_OTHER_RAY = """
import sys
import ray._private.services as services
from raybench.cli import main

def no_gcs():
    return frozenset()

no_gcs.cache_clear = lambda: None
services.find_gcs_addresses = no_gcs
sys.argv = ["raybench", *sys.argv[1:]]
main()
"""


@pytest.mark.ray
def test_address_auto_without_a_cluster(tmp_path: Path) -> None:
    # a Ray temp folder of its own: no `ray start` recorded there either
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path / "ray"), "RAY_ADDRESS": ""}
    proc = subprocess.run(
        [sys.executable, "-c", NO_OTHER_RAY, *SMOKE, "--address", "auto"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    one_line_error(proc, "--address")
    nothing_written(tmp_path)


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("grpc") is not None, reason="ray[client] here")
def test_a_ray_client_address_without_the_client(tmp_path: Path) -> None:
    proc = cli(*SMOKE, "--address", "ray://127.0.0.1:10001", cwd=tmp_path)
    one_line_error(proc, "ray[client]")
    nothing_written(tmp_path)


@pytest.mark.ray
def test_dashboard_without_its_packages(tmp_path: Path) -> None:
    from ray._private.utils import get_dashboard_dependency_error

    if get_dashboard_dependency_error() is None:
        pytest.skip("the dashboard's packages are installed")
    proc = cli(*SMOKE, "--dashboard", cwd=tmp_path)
    one_line_error(proc, "--dashboard", "ray[default]")
    nothing_written(tmp_path)


def test_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a folder")
    proc = run_main(*SMOKE, "--out", "results", cwd=tmp_path)
    one_line_error(proc, "results", "not a folder", "--out")


def test_report_into_a_missing_folder(tmp_path: Path) -> None:
    from test_store import fake_result

    from raybench.results import ExperimentStore

    ExperimentStore(tmp_path / "outputs" / "exp").write_run(fake_result())
    proc = run_main(
        "report", "-e", "exp", "--format", "markdown", "-o", "nowhere/t.md", cwd=tmp_path
    )
    one_line_error(proc, "nowhere", "does not exist")


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "best.yaml"
    bad.write_bytes("solver: fomaml\n# caf\xe9\n".encode("latin-1"))
    proc = run_main("run", "--config", str(bad), cwd=tmp_path)
    one_line_error(proc, str(bad), "UTF-8")
    nothing_written(tmp_path)


def test_a_search_space_that_is_not_utf8(tmp_path: Path) -> None:
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "fomaml.yaml").write_bytes(b"inner_lr: {low: 0.01, high: 0.1} # \xff\n")
    proc = run_main("sweep", "--solvers", "fomaml", "--preset", "smoke", "--spaces", str(spaces),
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "fomaml.yaml", "UTF-8")
    nothing_written(tmp_path)


def test_a_truncated_run_json(tmp_path: Path) -> None:
    experiment = tmp_path / "outputs" / "cut"
    experiment.mkdir(parents=True)
    (experiment / "run.json").write_text('{"configs": [{"solver": "fom')
    proc = run_main("run", "--resume", "cut", cwd=tmp_path)
    one_line_error(proc, "run.json", "damaged", "store check")


def test_a_text_file_as_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("every run: 101\n")
    proc = run_main("fidelity", "--checkpoint", "notes.txt", "--no-init", "--preset", "smoke",
               cwd=tmp_path)  # fmt: skip
    one_line_error(proc, "notes.txt", "not a file saved by torch.save")


def test_cuda_without_a_gpu_is_refused_before_anything_runs(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for backend in ("ray", "inline"):
        proc = run_main(*SMOKE, "--device", "cuda", "--backend", backend, cwd=tmp_path)
        one_line_error(proc, "cuda", "no CUDA device")
        assert "ray:" not in proc.stdout  # refused before Ray started
        nothing_written(tmp_path)


def test_a_parameter_error_is_spelled_for_its_caller_and_survives_pickling() -> None:
    """Ray hands a worker's error to the driver pickled: it keeps both spellings, and a
    value with braces in it (user text) is never read as a parameter's name."""
    import pickle

    from raybench.cli.options import API_FLAGS
    from raybench.errors import ParameterError

    error = ParameterError("{checkpoints} {path!r} not found; or give {first_seed}", path="{x}")
    assert str(error) == "checkpoints '{x}' not found; or give first_seed"
    assert error.spelled(API_FLAGS) == "--checkpoint '{x}' not found; or give --seed"
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.spelled(API_FLAGS) == error.spelled(API_FLAGS)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("solver: maml\nsettings:\n  1: 5\n", ("setting 1 is not a name",)),
        ("solver: maml\nsettings:\n  null: 5\n", ("setting None is not a name",)),
        ("solver: maml\n1: 2\nnull: 3\n", ("unknown key 1",)),
        ("solver: maml\npreset: 3\n", ("unknown preset '3'",)),
        ("solver: maml\nsettings:\n  inner_lr: [1, 2]\n", ("invalid value [1, 2] for inner_lr",)),
    ],
)
def test_a_config_file_with_settings_that_are_not_settings(
    tmp_path: Path, body: str, words: tuple[str, ...]
) -> None:
    """Issue 46, case 3: keys that are not text, a preset that is not one and a value of
    the wrong kind: one line naming the file."""
    (tmp_path / "c.yaml").write_text(body)
    refused = run_main("run", "--config", "c.yaml", "--backend", "inline", cwd=tmp_path)
    one_line_error(refused, "c.yaml: ", *words)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("flag", ["--cpus-per-run", "--max-concurrent", "--gpus-per-run"])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_resources_beyond_any_machine_are_refused_before_ray(
    tmp_path: Path, flag: str, command: str
) -> None:
    """Issue 46, case 3: ``--cpus-per-run inf`` waited for Ray forever (sweep) or failed
    after the manifest was written; every resource is a finite number in its range."""
    value = {"--cpus-per-run": "inf", "--max-concurrent": "1e9", "--gpus-per-run": "nan"}[flag]
    refused = run_main(command, "--solvers", "maml", "--preset", "smoke", flag, value, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert flag in refused.stderr
    assert not (tmp_path / "outputs").exists()


def test_execution_options_from_python_are_checked_by_keyword() -> None:
    """Issue 46, case 7: ``max_concurrent=-1`` never returned; every option of where runs
    execute is a number of the right kind in its range, named by its keyword."""
    from raybench.errors import ParameterError
    from raybench.execution import ExecutionOptions
    from raybench.search.sweep import SweepOptions

    for given in (
        {"max_concurrent": -1}, {"max_concurrent": 2.5}, {"cpus_per_run": float("inf")},
        {"cpus_per_run": "2"}, {"gpus_per_run": 9}, {"max_retries": -1},
        {"log_every": float("nan")}, {"connect_timeout": 0},
    ):  # fmt: skip
        (name,) = given
        with pytest.raises(ParameterError, match=f"^{name} "):
            ExecutionOptions(**given)
    with pytest.raises(ParameterError, match=r"^cpus_per_trial inf"):
        SweepOptions(cpus_per_trial=float("inf"))
    with pytest.raises(ParameterError, match=r"^max_concurrent 0"):
        SweepOptions(max_concurrent=0)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("bench", "--solvers", "maml", "--preset", "smoke", "--ab", "hidden=32"),
         ("--ab changes hidden", "another network")),
        (("bench", "--solvers", "maml", "--preset", "smoke", "--ab", "foo"),
         ("--ab expects key=value",)),
        (("bench", "--solvers", "maml", "--preset", "smoke", "--ab", "inner_lrr=3"),
         ("--ab: unknown setting 'inner_lrr'",)),
        ((*SMOKE, "--set", "seed=7"), ("--set seed=7", "--seeds")),
        ((*SMOKE, "--set", "ways=1_0"), ("'1_0' for ways",)),
        ((*SMOKE, "--set", "inner_lr=0.1", "--set", "inner_lr=0.2"),
         ("--set gives inner_lr twice (0.1, 0.2)",)),
        ((*SMOKE, "-e", ".hidden"), ("--experiment '.hidden'",)),
        ((*SMOKE, "-e", "./x/.h"), ("folder is named '.h'",)),
        (("sweep", "--solvers", "maml", "--preset", "smoke", "--set", "seed=1"), ("--set seed=1",)),
    ],
)  # fmt: skip
def test_small_things_refused_in_one_line_before_anything_runs(
    tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    """Issue 46, case 8: an A/B whose B needs another network, --ab's own errors naming
    --ab, a seed given as a setting (it was overwritten), 1_0 read as 10, one setting given
    twice (the last won), a hidden experiment name (written in the current folder)."""
    one_line_error(run_main(*args, cwd=tmp_path), *words)
    nothing_written(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["outputs"])  # no ./.hidden


def test_cuda_graphs_without_a_gpu_are_refused_before_anything_runs(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for extra in (("--backend", "inline"), ("--backend", "ray"), ("--device", "cpu")):
        proc = run_main(*SMOKE, "--set", "cuda_graph=true", *extra, cwd=tmp_path)
        one_line_error(proc, "cuda_graph=true")
        assert "ray:" not in proc.stdout
    swept = run_main(
        "sweep", "--solvers", "maml", "--preset", "smoke", "--set", "cuda_graph=true",
        cwd=tmp_path,
    )  # fmt: skip
    one_line_error(swept, "cuda_graph=true needs a CUDA device")
    nothing_written(tmp_path)


def test_a_column_suggested_is_one_the_table_has(tmp_path: Path) -> None:
    from stores import comparison_store

    comparison_store(tmp_path / "outputs" / "exp")
    proc = run_main("report", "-e", "exp", "--table", "runs", "--columns", "reference",
                    cwd=tmp_path)  # fmt: skip
    line = one_line_error(proc, "unknown column 'reference'")
    assert "did you mean" not in line  # 'references' was suggested, and refused in turn


def test_replicate_into_a_missing_folder_is_refused_before_training(tmp_path: Path) -> None:
    from stores import sweep_store

    sweep_store(tmp_path / "outputs" / "pub", seeds=range(3))
    proc = run_main("replicate", "-e", "pub", "-o", "missing/x.json", cwd=tmp_path)
    one_line_error(proc, "missing/x.json", "does not exist")
    assert not (tmp_path / "outputs" / "pub-replication").exists()
    agreed = run_main("agree", "--published", "pub", "-e", "pub", "-o", "missing/y.md",
                      cwd=tmp_path)  # fmt: skip
    one_line_error(agreed, "missing/y.md")
