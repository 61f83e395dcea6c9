"""Runs on a real local Ray: GPU slices, agreement with inline, retries, failures, resume."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
from cli_checks import descendants
from interrupts import writes_then_swallows_a_ctrl_c
from rendezvous import Rendezvous
from rich.console import Console

from raybench.data import OmniglotImages
from raybench.execution import ExecutionOptions, execute
from raybench.results import ExperimentStore
from raybench.solvers import make_config

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # every test here starts Ray

QUIET = Console(quiet=True)
RESTART_S = 120  # a backstop: Ray restarts a dead actor within seconds


@pytest.fixture(scope="module")
def local_ray(omniglot: OmniglotImages):
    """2 CPUs and 2 logical GPUs (no real one): placement is Ray's, training runs on CPU."""
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def smoke(solver: str, seed: int = 0, **overrides: object):
    return make_config(solver, "smoke", {"seed": seed, **overrides})


def rows(store: ExperimentStore) -> list[dict]:
    return store.read("runs").to_pylist()


def test_runs_share_logical_gpus_and_store_once(local_ray, tmp_path: Path) -> None:
    configs = [smoke("fomaml", 0), smoke("fomaml", 1), smoke("reptile", 0)]
    store = ExperimentStore(tmp_path / "exp")
    summaries = execute(configs, store, QUIET, ExecutionOptions(backend="ray"))
    assert [s.status for s in summaries] == ["completed"] * 3
    stored = rows(store)
    assert sorted(r["run_id"] for r in stored) == sorted(c.run_id for c in configs)
    for row in stored:
        assert row["resources"] == "1 CPU, 0.666 GPU"  # 2 GPUs shared by 3 concurrent runs
        assert row["node"] and row["status"] == "completed"
    assert len(store.files("runs")) == 3 and len(store.files("curves")) == 3


def test_ray_and_inline_give_identical_results(local_ray, tmp_path: Path) -> None:
    configs = [smoke("maml"), smoke("fomaml")]
    inline = ExperimentStore(tmp_path / "inline")
    remote = ExperimentStore(tmp_path / "ray")
    execute(configs, inline, QUIET, ExecutionOptions(backend="inline"))
    execute(configs, remote, QUIET, ExecutionOptions(backend="ray", gpus_per_run=0))

    def key(store: ExperimentStore) -> list:
        curves = (
            store.read("curves")
            .drop_columns(["experiment", "train_time_s", "ms_per_step"])
            .to_pylist()
        )
        tests = sorted((r["run_id"], r["test_acc_mean"]) for r in rows(store))
        return [sorted(curves, key=lambda r: (r["run_id"], r["step"])), tests]

    assert key(inline) == key(remote)


def run_with_kills(
    store: ExperimentStore,
    configs: list,
    retries: int,
    rendezvous: Rendezvous,
    at: tuple[int, ...] = (4,),
) -> tuple[list, list[int]]:
    """Execute on Ray, SIGKILLing the first run's worker as it waits at each step of
    ``at`` (a retry goes on from the state saved there and meets the next gate)."""
    killed: list[int] = []
    run_id = configs[0].run_id
    rendezvous.gate(run_id, *at)
    done = threading.Event()

    failures: list[BaseException] = []

    def kill_all() -> None:
        try:
            for step in at:
                pid = rendezvous.wait(run_id, step, alive=lambda: not done.is_set())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                rendezvous.release(run_id, step)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=kill_all)
    thread.start()
    try:
        options = ExecutionOptions(backend="ray", gpus_per_run=0, max_retries=retries)
        summaries = execute(configs, store, QUIET, options)
    finally:
        done.set()
        thread.join()
        rendezvous.clear()
    if failures:
        raise failures[0]
    return summaries, killed


def test_a_killed_worker_is_retried_and_completes(
    local_ray, tmp_path: Path, rendezvous: Rendezvous
) -> None:
    config = smoke("fomaml", meta_steps=30, eval_every=2)
    store = ExperimentStore(tmp_path / "exp")
    summaries, killed = run_with_kills(store, [config], 1, rendezvous, at=(4,))
    assert len(killed) == 1
    assert summaries[0].status == "completed"
    (row,) = rows(store)
    assert row["status"] == "completed" and row["steps_done"] == 30
    # the retry went on from the evaluation point of the kill, then cleaned up
    assert row["resumed_from_step"] == 4
    assert not store.progress_path(config.run_id).exists()


def comparable(store: ExperimentStore, run_id: str) -> tuple:
    curves = sorted(
        (
            {k: v for k, v in c.items() if k not in ("experiment", "train_time_s", "ms_per_step")}
            for c in store.read("curves").to_pylist()
            if c["run_id"] == run_id
        ),
        key=lambda c: c["step"],
    )
    (row,) = [r for r in rows(store) if r["run_id"] == run_id]
    return curves, row["test_acc_mean"], row["final_val_acc"]


def test_a_run_killed_past_its_retries_fails_and_resumes_bit_for_bit(
    local_ray, tmp_path: Path, rendezvous: Rendezvous
) -> None:
    doomed = smoke("fomaml", meta_steps=30, eval_every=2)
    other = smoke("reptile")
    store = ExperimentStore(tmp_path / "exp")
    summaries, killed = run_with_kills(store, [doomed, other], 1, rendezvous, at=(4, 8))
    assert len(set(killed)) == 2  # the first worker at step 4, its retry at step 8
    status = {s.run_id: s.status for s in summaries}
    assert status == {doomed.run_id: "failed", other.run_id: "completed"}
    failed = next(r for r in rows(store) if r["run_id"] == doomed.run_id)
    assert "died" in failed["error"].lower() and failed["steps_done"] == 8
    assert store.progress_path(doomed.run_id).is_file()  # kept for the resume
    # resume trains the failed run again from its state and keeps the finished one
    again = execute([doomed, other], store, QUIET, ExecutionOptions(backend="ray", gpus_per_run=0))
    assert {s.run_id: s.status for s in again} == {
        doomed.run_id: "completed",
        other.run_id: "skipped",
    }
    assert len(store.files("runs")) == 2 and len(rows(store)) == 2
    resumed = next(r for r in rows(store) if r["run_id"] == doomed.run_id)
    assert resumed["resumed_from_step"] == 8
    whole = ExperimentStore(tmp_path / "whole")
    execute([doomed], whole, QUIET, ExecutionOptions(backend="inline"))
    assert comparable(store, doomed.run_id) == comparable(whole, doomed.run_id)


def progress_hubs() -> set[int]:
    return {p for p, c in descendants(os.getpid()).items() if "ProgressHub" in c}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killing_the_progress_actor_never_stops_training(
    local_ray, tmp_path: Path, rendezvous: Rendezvous
) -> None:
    """The progress hub killed twice (as the out-of-memory killer would), while a run is
    held at step 4 after notifying it: the runs train on and are stored, each once."""
    configs = [smoke("fomaml", meta_steps=30, eval_every=2), smoke("reptile", meta_steps=30)]
    store = ExperimentStore(tmp_path / "exp")
    run_id = configs[0].run_id
    rendezvous.gate(run_id, 4)
    killed: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def kill_hub_twice() -> None:
        try:
            rendezvous.wait(run_id, 4, alive=lambda: not done.is_set())
            for _ in range(2):  # Ray restarts it (max_restarts=-1): a new process each time
                deadline = time.monotonic() + RESTART_S
                while not progress_hubs() - set(killed):
                    assert time.monotonic() < deadline, "the progress hub was not restarted"
                    time.sleep(0.05)
                pid = min(progress_hubs() - set(killed))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        except BaseException as exc:
            failures.append(exc)
        finally:
            rendezvous.release(run_id, 4)

    killer = threading.Thread(target=kill_hub_twice)
    killer.start()
    try:
        summaries = execute(configs, store, QUIET, ExecutionOptions(backend="ray", gpus_per_run=0))
    finally:
        done.set()
        killer.join()
    if failures:
        raise failures[0]
    assert len(killed) == 2
    assert [s.status for s in summaries] == ["completed", "completed"]
    assert sorted(r["run_id"] for r in rows(store)) == sorted(c.run_id for c in configs)
    assert len(store.files("runs")) == 2


def test_an_unwritable_store_keeps_results_and_the_other_runs_go_on(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runs/ unwritable after a run finished: the driver says so, the other run trains and
    is stored, the result is retried; still unwritable at the end, it stays as the run's
    final training state and the next command stores it without training it again."""
    from raybench.execution import storing

    first, second = smoke("fomaml"), smoke("reptile", meta_steps=20, eval_every=2)
    store = ExperimentStore(tmp_path / "exp")
    real = ExperimentStore.write_run
    refused: list = []

    def read_only_for_fomaml(self, result, **kwargs):
        if result.config.run_id == first.run_id:
            refused.append(result)
            raise PermissionError(13, "Permission denied", str(self.root / "runs"))
        return real(self, result, **kwargs)

    monkeypatch.setattr(ExperimentStore, "write_run", read_only_for_fomaml)
    monkeypatch.setattr(storing, "RETRY_EVERY_S", 0.0)
    console = Console(record=True, width=300)
    summaries = execute([first, second], store, console, ExecutionOptions(backend="ray"))
    text = console.export_text()
    assert {s.run_id: s.status for s in summaries} == {
        first.run_id: "unstored",
        second.run_id: "completed",
    }
    assert "could not store its result" in text and "Permission denied" in text
    assert len(refused) >= 2  # written once, then retried
    assert [r["run_id"] for r in rows(store)] == [second.run_id]
    state = store.progress_path(first.run_id)
    assert state.is_file()  # the final state, for --resume
    monkeypatch.setattr(ExperimentStore, "write_run", real)  # writable again
    again = execute([first, second], store, QUIET, ExecutionOptions(backend="ray"))
    assert {s.run_id: s.status for s in again} == {
        first.run_id: "completed",
        second.run_id: "skipped",
    }
    row = next(r for r in rows(store) if r["run_id"] == first.run_id)
    assert row["resumed_from_step"] == first.meta_steps  # tested again, not trained again
    assert row["test_acc_mean"] == refused[0].test_acc_mean
    assert len(rows(store)) == 2 and not state.exists()


def test_two_node_cluster_spreads_runs_and_stores_each_once(
    omniglot: OmniglotImages, tmp_path: Path
) -> None:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        configs = [smoke("fomaml", seed) for seed in range(2)]  # 1 CPU a node: one each
        store = ExperimentStore(tmp_path / "exp")
        options = ExecutionOptions(backend="ray", address=cluster.address, gpus_per_run=0)
        summaries = execute(configs, store, QUIET, options)
        assert [s.status for s in summaries] == ["completed"] * 2
        stored = rows(store)
        assert sorted(r["run_id"] for r in stored) == sorted(c.run_id for c in configs)
        assert len({r["node"] for r in stored}) == 2  # both nodes trained runs
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_gpu_share_fills_but_never_overcrowds_a_card() -> None:
    from raybench.execution.ray_backend import gpu_share

    assert gpu_share(1, 3) == 0.333  # three solvers side by side on one GPU
    assert gpu_share(1, 24) == 0.125  # 24 runs: 8 at a time on the card, the rest queue
    assert gpu_share(2, 1) == 1.0
    assert gpu_share(0, 4) == 0.0


def test_ray_runs_stop_after_a_swallowed_ctrl_c(
    local_ray, ctrl_c: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ctrl-C swallowed by a finaliser while the driver waits (Ray's ActorHandle.__del__
    can take it): the driver stops on its next turn instead of waiting for the rest."""
    configs = [smoke("fomaml", 0), smoke("fomaml", 1)]
    store = ExperimentStore(tmp_path / "exp")
    writes_then_swallows_a_ctrl_c(monkeypatch)
    options = ExecutionOptions(backend="ray", gpus_per_run=0, max_concurrent=1)
    with pytest.raises(KeyboardInterrupt):
        execute(configs, store, QUIET, options)
    assert store.finished_ids() == {configs[0].run_id}
    assert [d.exc_type for d in ctrl_c] == [KeyboardInterrupt]
