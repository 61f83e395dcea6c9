"""Interruptions through the real entry point, each judged by the store afterwards: Ctrl-C,
SIGTERM and SIGKILL of the driver, two drivers on one store, a full disk, and ``--resume``
after runs of several commands. Every resumed run must equal a run never stopped."""

from __future__ import annotations

import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from cli_checks import RAYBENCH, descendants, run_main, start_raybench
from rendezvous import Rendezvous

from raybench.data import OmniglotImages
from raybench.results import ExperimentStore, load_checkpoint
from raybench.solvers import make_config
from raybench.train import Progress, train

pytestmark = pytest.mark.slow
RAY_TESTS_SHARE_NOTHING = True  # each test starts its own Ray through the CLI

STEPS, EVAL = 28, 4
RAY_GONE_S = 60  # a backstop: Ray's processes follow a killed driver within seconds
LONG = ("--preset", "smoke", "--steps", str(STEPS), "--set", f"eval_every={EVAL}", "--no-report")


def config(solver: str = "fomaml", seed: int = 0):
    return make_config(solver, "smoke", {"seed": seed, "meta_steps": STEPS, "eval_every": EVAL})


def cli(*args: str, cwd: Path, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAYBENCH), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def saved_step(path: Path) -> int:
    """The step of a training state file (0 when absent or mid-replace)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return 0


def rows(store: ExperimentStore) -> list[dict]:
    return store.read("runs").to_pylist()


def reference(omniglot: OmniglotImages, cfg, sizes: dict[int, int] | None = None, tmp=None):
    """The run never stopped, with one thread as the inline back end and a 1-CPU actor
    use; ``sizes`` collects the size of its training state at each evaluation."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    state = None if tmp is None else tmp / "reference.pt"

    def hook(event: Progress) -> None:
        if sizes is not None and state is not None and state.is_file():
            sizes.setdefault(event.step, state.stat().st_size)

    try:
        return train(cfg, omniglot, progress=hook, resume=state)
    finally:
        torch.set_num_threads(previous)


def same_as(store: ExperimentStore, whole) -> None:
    """The stored run equals the uninterrupted one: curves, test accuracy, parameters."""
    run_id = whole.config.run_id
    (row,) = [r for r in rows(store) if r["run_id"] == run_id]
    assert row["status"] == "completed" and row["steps_done"] == STEPS
    assert row["test_acc_mean"] == whole.test_acc_mean
    curves = [
        {k: v for k, v in c.items() if k not in ("train_time_s", "ms_per_step")}
        for c in sorted(
            (c for c in store.read("curves").to_pylist() if c["run_id"] == run_id),
            key=lambda c: c["step"],
        )
    ]
    expected = [
        {k: v for k, v in c.items() if k not in ("train_time_s", "ms_per_step")}
        for c in whole.curves
    ]
    assert [{k: c[k] for k in expected[0]} for c in curves] == expected
    params = load_checkpoint(store.root / row["checkpoint"])
    for name, value in whole.params.items():
        assert torch.equal(params[name], value), name


def test_resume_continues_every_commands_unfinished_runs(
    omniglot: OmniglotImages, tmp_path: Path, rendezvous: Rendezvous
) -> None:
    """An interrupted run of an earlier command is continued after a later command ran."""
    store = ExperimentStore(tmp_path / "outputs" / "multi")
    rendezvous.gate(config().run_id, EVAL)
    args = ["run", "--backend", "inline", "--solvers", "fomaml", *LONG, "-e", "multi"]
    first = start_raybench(*args, cwd=tmp_path)
    state = store.progress_path(config().run_id)
    rendezvous.wait(config().run_id, EVAL, first)  # its state of step EVAL is saved
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-2000:]
    rendezvous.clear()
    stopped_at = saved_step(state)
    assert stopped_at == EVAL
    second = cli("run", "--backend", "inline", "--solvers", "reptile", "--preset", "smoke",
                 "-e", "multi", "--no-report", cwd=tmp_path)  # fmt: skip
    assert second.returncode == 0, second.stderr[-2000:]
    assert [r["solver"] for r in rows(store)] == ["reptile"]
    refused = run_main(  # refusals and a resume with nothing to do: in this process
        "run", "--resume", "multi", "--steps", "5", "--set", "inner_lr=0.2", cwd=tmp_path
    )
    assert refused.returncode == 2 and "--set, --steps" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    narrowed = run_main("run", "--resume", "multi", "--solvers", "reptile", cwd=tmp_path)
    assert narrowed.returncode == 0 and "nothing to resume" in narrowed.stdout
    assert saved_step(state) == stopped_at  # --solvers reptile left fomaml alone
    resumed = cli("run", "--resume", "multi", "--backend", "inline", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from step {stopped_at} of {STEPS} (saved state)" in resumed.stdout
    stored = sorted((r["solver"], r["status"], r["resumed_from_step"]) for r in rows(store))
    assert stored == [("fomaml", "completed", stopped_at), ("reptile", "completed", 0)]
    assert len(store.files("runs")) == 2
    same_as(store, reference(omniglot, config()))
    assert not state.exists()


def test_two_drivers_on_one_store_never_train_a_run_twice(
    tmp_path: Path, rendezvous: Rendezvous
) -> None:
    """The second driver comes while the first holds seed 0 mid-run (by a gate): it
    leaves that run alone, trains seed 1, and the first never trains seed 1 again."""
    args = ("run", "--backend", "inline", "--solvers", "fomaml", "--seeds", "2", *LONG, "-e", "two")
    store = ExperimentStore(tmp_path / "outputs" / "two")
    rendezvous.gate(config().run_id, EVAL)
    first = start_raybench(*args, cwd=tmp_path)
    rendezvous.wait(config().run_id, EVAL, first)
    second = cli(*args, cwd=tmp_path)
    rendezvous.release(config().run_id, EVAL)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    assert "left to another raybench" in second.stdout
    stored = rows(store)
    assert sorted(r["run_id"] for r in stored) == sorted(config("fomaml", s).run_id for s in (0, 1))
    assert all(r["status"] == "completed" and r["resumed_from_step"] == 0 for r in stored)
    assert len(store.files("runs")) == 2
    assert not (store.root / "locks").exists()  # released and removed


def test_a_full_disk_keeps_the_state_and_resume_finishes(
    omniglot: OmniglotImages, tmp_path: Path
) -> None:
    """A file-size limit stands in for a full disk: the state of step 20 fits, the next
    ones do not. The run is stored as failed with "the disk is full", keeps its state, and
    --resume finishes it as if it never stopped."""
    sizes: dict[int, int] = {}
    whole = reference(omniglot, config(), sizes, tmp_path)
    assert sizes[24] > sizes[20]
    limit = sizes[20] + 1

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    store = ExperimentStore(tmp_path / "outputs" / "full")
    proc = cli("run", "--backend", "inline", "--solvers", "fomaml", *LONG, "-e", "full",
               cwd=tmp_path, preexec_fn=small_disk)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (row,) = rows(store)
    assert row["status"] == "failed" and "the disk is full" in row["error"], row["error"]
    assert "--resume" in row["error"]
    state = store.progress_path(config().run_id)
    assert saved_step(state) == 20
    resumed = cli("run", "--resume", "full", "--backend", "inline", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (row,) = rows(store)
    assert row["resumed_from_step"] == 20
    same_as(store, whole)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_stops_like_ctrl_c(tmp_path: Path, rendezvous: Rendezvous) -> None:
    store = ExperimentStore(tmp_path / "outputs" / "term")
    rendezvous.gate(config().run_id, EVAL)
    proc = start_raybench("run", "--solvers", "fomaml", *LONG, "-e", "term", cwd=tmp_path)
    state = store.progress_path(config().run_id)
    worker = rendezvous.wait(config().run_id, EVAL, proc)
    ray = descendants(proc.pid)
    assert worker in ray
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "SIGTERM" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "raybench: interrupted; finished results are stored, --resume continues"
    )
    assert not any(alive(pid) for pid in ray), {p: c for p, c in ray.items() if alive(p)}
    assert store.read("runs").num_rows == 0 and saved_step(state) == EVAL


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_driver_takes_its_ray_along_and_resume_finishes(
    omniglot: OmniglotImages, tmp_path: Path, rendezvous: Rendezvous
) -> None:
    """SIGKILL of the driver while its worker is held at step EVAL: every process of its
    embedded Ray is gone (the worker with them: let go, it would write a later state), and
    --resume (which takes over the run's lock, released by the kernel) finishes it as if
    never stopped."""
    store = ExperimentStore(tmp_path / "outputs" / "killed")
    rendezvous.gate(config().run_id, EVAL)
    proc = start_raybench("run", "--solvers", "fomaml", *LONG, "-e", "killed", cwd=tmp_path)
    state = store.progress_path(config().run_id)
    worker = rendezvous.wait(config().run_id, EVAL, proc)
    ray = descendants(proc.pid)
    assert any("raylet" in c for c in ray.values()) and "RunWorker" in ray.get(worker, "")
    proc.kill()
    proc.communicate(timeout=60)
    rendezvous.release(config().run_id, EVAL)  # a surviving worker would now go on
    deadline = time.monotonic() + RAY_GONE_S
    while any(alive(pid) for pid in ray) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in ray), {p: c for p, c in ray.items() if alive(p)}
    assert saved_step(state) == EVAL  # nothing wrote after the driver died
    resumed = cli("run", "--resume", "killed", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (row,) = rows(store)
    assert row["resumed_from_step"] == EVAL
    same_as(store, reference(omniglot, config()))
