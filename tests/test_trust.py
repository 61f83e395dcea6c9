"""What raybench reads from a results folder is data, never code; and one writer per run.

(The planted Ray Tune pickle of an interrupted sweep is in ``test_sweep.py``.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_checks import run_main
from test_store import fake_result

from raybench.errors import RaybenchError
from raybench.results import ExperimentStore
from raybench.results.locks import RunLocks, holder, is_locked, lock_path
from raybench.results.plans import plan_resume, record_plan
from raybench.resume import TrainingState, save_state, saved_states
from raybench.solvers import make_config


class Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_progress_is_refused_not_run(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    marker = tmp_path / "ran"
    config = make_config("fomaml", "smoke")
    planted = store.progress_path(config.run_id)
    planted.parent.mkdir(parents=True)
    torch.save({"format": 2, "run_id": config.run_id, "config": Planted(marker)}, planted)
    states, unusable = saved_states(planted.parent)
    assert states == [] and [p for p, _ in unusable] == [planted]
    from raybench.measurements.fidelity import checkpoint_point

    with pytest.raises(RaybenchError):
        checkpoint_point(planted)
    assert not marker.exists()


def test_resume_plans_every_command_and_every_saved_state(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp", warn=lambda _m: None)
    first = [make_config("fomaml", "smoke", {"seed": s}) for s in (0, 1)]
    second = [make_config("reptile", "smoke")]
    record_plan(store, first, "preset")
    record_plan(store, second, "config")
    record_plan(store, second, "config")  # the same plan twice: one file
    assert len(list((store.root / "manifests").glob("*.json"))) == 2
    store.write_run(fake_result("reptile", 0))  # the second command finished
    orphan = make_config("maml", "smoke")  # a state no recorded plan names
    state = TrainingState(2, {"w": torch.ones(1)}, {}, torch.Generator().get_state())
    save_state(store.progress_path(orphan.run_id), orphan, state)
    plan = plan_resume(store)
    assert sorted(c.run_id for c in plan.configs) == sorted(
        [first[0].run_id, first[1].run_id, orphan.run_id]
    )
    assert plan.from_step == {orphan.run_id: 2} and plan.finished == 1
    assert plan.sources[first[0].run_id] == "preset"


def test_a_lock_excludes_a_second_driver_until_released(tmp_path: Path) -> None:
    run_id = make_config("fomaml", "smoke").run_id
    with RunLocks(tmp_path) as mine:
        assert mine.acquire(run_id)
        path = lock_path(tmp_path, run_id)
        assert is_locked(path) and f"pid {os.getpid()}" in holder(path)
        other = RunLocks(tmp_path)
        assert not other.acquire(run_id)
    assert not path.exists()  # released and removed
    assert other.acquire(run_id)
    other.release_all()


def test_a_killed_holder_leaves_its_lock_free(tmp_path: Path) -> None:
    run_id = "fomaml-s0-abc"
    code = (
        "import sys; from raybench.results.locks import RunLocks; "
        f"l = RunLocks({str(tmp_path)!r}); assert l.acquire({run_id!r}); "
        "print('held', flush=True); sys.stdin.read()"  # held until killed, whatever the clock
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout.readline().strip() == "held"
            assert not RunLocks(tmp_path).acquire(run_id)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    locks = RunLocks(tmp_path)
    assert locks.acquire(run_id)  # the kernel released it with the process
    locks.release_all()


def test_a_damaged_plan_is_a_one_line_error(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "exp")
    record_plan(store, [make_config("fomaml", "smoke")], "preset")
    path = next((store.root / "manifests").glob("*.json"))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(RaybenchError, match="damaged") as info:
        plan_resume(store)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    # its advice, followed, moves the damaged plan aside (it named the manifests folder)
    advice = re.search(r"`raybench (store check [^`]+)`", str(info.value))
    assert advice is not None, info.value
    fixed = run_main(*advice[1].split(), cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert not path.exists() and (store.root / "quarantine" / "manifests" / path.name).exists()
