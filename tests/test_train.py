"""The training loop on real Omniglot with a tiny configuration."""

from __future__ import annotations

import math

import pytest
import torch

from raybench.data import OmniglotImages
from raybench.models import Params
from raybench.resume import TrainingState, load_state, save_state
from raybench.runtime import kernel_set
from raybench.solvers import METRICS, SOLVERS, make_config
from raybench.solvers.fomaml import FOMAML
from raybench.tasks import TaskBatch
from raybench.train import LoopState, mean_ci95, train

TINY = {"hidden": 8, "meta_steps": 4, "eval_every": 2, "val_tasks": 6, "test_tasks": 10}


def tiny(solver: str = "fomaml", **overrides: object):
    return make_config(solver, "smoke", {**TINY, **overrides})


def test_training_records_curves_and_test_accuracy(omniglot: OmniglotImages) -> None:
    result = train(tiny("maml"), omniglot)
    assert result.status == "completed", result.error
    assert result.family == "second-order"
    assert [row["step"] for row in result.curves] == [2, 4]
    for row in result.curves:
        for metric in METRICS:
            for where in ("train", "val"):
                value = row[f"{where}_{metric}"]
                assert math.isfinite(value)
                if "acc" in metric:  # percent: chance is 20%, a fraction would be <= 1
                    assert 5 < value <= 100
        assert row["grad_norm"] > 0
    assert result.final_val_acc == result.curves[-1]["val_query_acc_post"]
    assert result.test_tasks_n == 10
    assert 5 < result.test_acc_mean <= 100 and result.test_acc_ci95 > 0  # percent
    assert result.ms_per_step > 0 and result.peak_memory_mb > 0
    assert result.params is not None and set(result.params) == {
        k for k in result.params if k.startswith(("features", "head"))
    }
    # what rounded it, for telling a bitwise reproduction from a statistical one
    assert result.kernels == kernel_set(torch.device("cpu"))
    assert f"ATen {torch.backends.cpu.get_cpu_capability()}" in result.kernels


def test_same_seed_same_results_other_seed_other_curves(omniglot: OmniglotImages) -> None:
    """Same seed, same results, whether the curves' own passes (support after, query
    before adaptation) measure every task of a step (``curve_tasks=None``, as before) or
    only the first (the default): the weights, test accuracy and the curves the solver
    computes anyway are unchanged, and those passes' curves are still recorded, over one
    task instead of two."""
    assert tiny().curve_tasks == 1
    a = train(tiny(seed=5, curve_tasks=None), omniglot)
    b = train(tiny(seed=5), omniglot)
    c = train(tiny(seed=6), omniglot)

    def values(result):
        return [
            (row["step"], row["train_query_loss_post"], row["train_support_loss_pre"],
             row["val_query_loss_post"])
            for row in result.curves
        ]  # fmt: skip

    assert values(a) == values(b)
    assert a.test_acc_mean == b.test_acc_mean
    assert all(torch.equal(b.params[name], p) for name, p in a.params.items())
    assert b.config.run_id == a.config.run_id  # one run: only the curves' noise differs
    for row_a, row_b in zip(a.curves, b.curves, strict=True):
        assert math.isfinite(row_b["train_query_loss_pre"])
        assert math.isfinite(row_b["train_support_acc_post"])
        assert row_b["train_query_loss_pre"] != row_a["train_query_loss_pre"]
    assert values(a) != values(c)


def test_training_learns_something(omniglot: OmniglotImages) -> None:
    """80 FOMAML steps meta-learn: on the same 40 validation tasks, adapted the same way,
    the trained network beats the untrained one by a wide margin (measured: 70.7% against
    41.5%; chance is 20%, and adaptation alone already gives the untrained network ~40%, so
    a threshold near chance would pass a solver whose meta-gradient is zero)."""
    learn = {"hidden": 16, "val_tasks": 40, "inner_lr": 0.4, "meta_batch": 4}
    trained = train(tiny(meta_steps=80, eval_every=80, outer_lr=0.005, **learn), omniglot)
    untrained = train(tiny(meta_steps=1, eval_every=1, outer_lr=1e-9, **learn), omniglot)
    assert trained.status == untrained.status == "completed"
    assert trained.final_val_acc > 55.0  # percent
    assert trained.final_val_acc > untrained.final_val_acc + 15.0


class NaNAfterTwo(FOMAML):
    """A solver whose meta-gradient becomes non-finite at its third step."""

    name = "nan-after-two"
    calls = 0

    def meta_grad(self, params: Params, batch: TaskBatch):
        type(self).calls += 1
        grads, metrics = super().meta_grad(params, batch)
        if type(self).calls > 2:
            grads = {k: torch.full_like(g, math.nan) for k, g in grads.items()}
        return grads, metrics


class Broken(FOMAML):
    name = "broken"

    def meta_grad(self, params: Params, batch: TaskBatch):
        raise RuntimeError("out of memory (simulated)")


def test_divergence_ends_the_run_and_keeps_the_curves(
    omniglot: OmniglotImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SOLVERS, NaNAfterTwo.name, NaNAfterTwo)
    NaNAfterTwo.calls = 0
    result = train(tiny(NaNAfterTwo.name, meta_steps=20), omniglot)
    assert result.status == "diverged"
    assert result.steps_done == 4  # stopped at the first check after step 3, not at 20
    assert [row["step"] for row in result.curves] == [2, 4]
    assert math.isfinite(result.curves[0]["val_query_acc_post"])
    assert math.isnan(result.curves[1]["grad_norm"])
    assert result.test_acc_mean is None


def test_a_crashing_solver_is_a_failed_run_not_a_crash(
    omniglot: OmniglotImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SOLVERS, Broken.name, Broken)
    result = train(tiny(Broken.name), omniglot)
    assert result.status == "failed"
    assert result.error == "RuntimeError: out of memory (simulated)"
    assert result.wall_time_s > 0 and result.ended_at is not None


def test_confidence_interval() -> None:
    values = torch.tensor([0.0, 1.0] * 50)
    mean, ci = mean_ci95(values)
    assert mean == 0.5
    assert ci == pytest.approx(1.96 * values.double().std().item() / 10)


class Interrupted(BaseException):
    """Stands for a kill: not an ``Exception``, so ``train`` does not record it."""


def interrupt_at(step: int):
    def hook(event) -> None:
        if event.phase == "train" and event.step == step:
            raise Interrupted

    return hook


def curve_values(result) -> list:
    """The curves without timings, NaN (metrics a solver does not train with) as None."""
    return [
        {
            k: None if v != v else v
            for k, v in row.items()
            if k not in ("train_time_s", "ms_per_step")
        }
        for row in result.curves
    ]


@pytest.mark.parametrize("solver", ["maml", "finetune-head"])
def test_a_resumed_run_equals_one_never_stopped(
    omniglot: OmniglotImages, tmp_path, solver: str
) -> None:
    config = tiny(solver, meta_steps=6)
    whole = train(config, omniglot)
    state = tmp_path / "progress" / f"{config.run_id}.pt"
    with pytest.raises(Interrupted):
        train(config, omniglot, interrupt_at(5), resume=state)
    assert state.is_file()  # saved at the evaluation of step 4
    resumed = train(config, omniglot, resume=state)
    assert resumed.status == "completed", resumed.error
    assert resumed.resumed_from_step == 4 and resumed.steps_done == 6
    assert curve_values(resumed) == curve_values(whole)
    assert resumed.test_acc_mean == whole.test_acc_mean
    for name, p in whole.params.items():
        assert torch.equal(resumed.params[name], p), name
    assert resumed.train_time_s >= resumed.curves[1]["train_time_s"] > 0


def adam_loop(seed: int, step: int = 0) -> LoopState:
    """A loop state over two parameters, after ``step`` Adam steps and generator draws."""
    torch.manual_seed(seed)
    params = {"w": torch.randn(3, 2, requires_grad=True), "b": torch.randn(2, requires_grad=True)}
    optimiser = torch.optim.Adam(list(params.values()), lr=0.01)
    generator = torch.Generator().manual_seed(seed)
    loop = LoopState(step, params, optimiser, generator)
    for _ in range(step):
        for p in params.values():
            p.grad = torch.randn(p.shape, generator=generator)
        optimiser.step()
    return loop


def test_the_loop_state_is_saved_and_restored_whole(tmp_path) -> None:
    """Every field of the stored training state comes from the loop state and goes back into
    it: a restored loop continues exactly as the saved one would have."""
    from dataclasses import fields

    assert [f.name for f in fields(LoopState)] == [f.name for f in fields(TrainingState)]
    loop = adam_loop(seed=1, step=3)
    loop.curves, loop.interval_ms = [{"step": 2, "val_query_acc_post": 41.5}], [3.5, 2.5]
    loop.train_time_s, loop.val_acc, loop.started_at = 1.25, 41.5, "2026-12-07T21:00:00+00:00"
    config, path = tiny(), tmp_path / "state.pt"
    save_state(path, config, loop.saved(wall_time_s=9.5, peak_memory_mb=321.0))
    saved = load_state(path, config)
    assert isinstance(saved, TrainingState) and saved.step == 3
    assert (saved.wall_time_s, saved.peak_memory_mb) == (9.5, 321.0)
    restored = adam_loop(seed=2)  # other values everywhere
    restored.restore(saved)
    for name in ("step", "curves", "train_time_s", "interval_ms", "val_acc", "started_at"):
        assert getattr(restored, name) == getattr(loop, name), name
    assert (restored.wall_time_s, restored.peak_memory_mb) == (9.5, 321.0)
    for name, p in loop.params.items():
        assert torch.equal(restored.params[name], p), name
    for a in (loop, restored):  # one more step of each: the same
        for p in a.params.values():
            p.grad = torch.rand(p.shape, generator=a.generator)
        a.optimiser.step()
    for name, p in loop.params.items():
        assert torch.equal(restored.params[name], p), name
    assert restored.step == 3 and loop.params["w"].abs().sum() > 0


def test_a_saved_state_of_another_config_is_not_continued(
    omniglot: OmniglotImages, tmp_path
) -> None:
    state = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        train(tiny(meta_steps=6), omniglot, interrupt_at(5), resume=state)
    other = train(tiny(meta_steps=6, outer_lr=0.002), omniglot, resume=state)
    assert other.resumed_from_step == 0 and other.steps_done == 6
    state.write_bytes(b"not a checkpoint")  # a torn or foreign file: start over, never fail
    again = train(tiny(meta_steps=6), omniglot, resume=state)
    assert again.status == "completed" and again.resumed_from_step == 0


def test_execute_continues_a_partial_run_and_rerun_starts_over(
    omniglot: OmniglotImages, tmp_path
) -> None:
    from rich.console import Console

    from raybench.execution import ExecutionOptions, execute
    from raybench.results import ExperimentStore

    config = tiny(meta_steps=6)
    store = ExperimentStore(tmp_path / "exp")
    state = store.progress_path(config.run_id)
    quiet = Console(quiet=True)

    def stored_row(options: ExecutionOptions) -> dict:
        with pytest.raises(Interrupted):
            train(config, omniglot, interrupt_at(5), resume=state)
        assert state.is_file()
        (summary,) = execute([config], store, quiet, options)
        assert summary.status == "completed"
        assert not state.exists()  # gone once the row is written
        (row,) = store.read("runs").to_pylist()
        return row

    row = stored_row(ExecutionOptions(backend="inline"))
    assert row["resumed_from_step"] == 4 and row["steps_done"] == 6
    row = stored_row(ExecutionOptions(backend="inline", rerun=True))
    assert row["resumed_from_step"] == 0 and row["steps_done"] == 6
