"""Common random numbers as a guarantee: seed ``s`` gives every solver and configuration of
a setting the same initial network, training draws and test tasks, and the run records it.

The runs are spied on (their solver's ``init_params`` and ``train_batch``), so what is
compared is what each run actually started from and consumed, not a re-derivation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

import raybench.run_setup as run_setup
from raybench import pairing
from raybench.data import OmniglotImages
from raybench.solvers import SOLVERS, make_config
from raybench.train import RunResult, train

TINY = {"hidden": 8, "meta_steps": 2, "eval_every": 2, "val_tasks": 4, "test_tasks": 6}
META = sorted(name for name, cls in SOLVERS.items() if cls.family != "baseline")
BASELINES = sorted(name for name, cls in SOLVERS.items() if cls.family == "baseline")


@dataclass
class Spied:
    result: RunResult
    init: dict[str, torch.Tensor] = field(default_factory=dict)
    draws: list[list[torch.Tensor]] = field(default_factory=list)


def spied_run(
    omniglot: OmniglotImages, monkeypatch: pytest.MonkeyPatch, solver: str, **overrides: object
) -> Spied:
    """Train one tiny run, keeping its initial parameters and the training draws of its
    generator (the draws the fingerprint makes with a generator of its own are set apart)."""
    seen = Spied(result=RunResult(config=make_config(solver, "smoke", TINY), family=""))
    made = run_setup.make_solver
    by_generator: dict[int, list[list[torch.Tensor]]] = {}
    last: list[int] = []

    def spy(config, model):
        built = made(config, model)
        init, draw = built.init_params, built.train_batch

        def init_params(*args):
            params = init(*args)
            seen.init.update({k: v.detach().clone() for k, v in params.items()})
            return params

        def train_batch(train_tasks, n_tasks, generator):
            batch = draw(train_tasks, n_tasks, generator)
            tensors = [t.clone() for t in pairing.batch_tensors(batch)]
            by_generator.setdefault(id(generator), []).append(tensors)
            last[:] = [id(generator)]
            return batch

        built.init_params, built.train_batch = init_params, train_batch
        return built

    with monkeypatch.context() as patch:
        patch.setattr(run_setup, "make_solver", spy)
        seen.result = train(make_config(solver, "smoke", {**TINY, **overrides}), omniglot)
    assert seen.result.status == "completed", seen.result.error
    seen.draws = by_generator[last[0]]  # the training loop's, not the fingerprint's own
    assert len(seen.draws) == TINY["meta_steps"]
    return seen


def equal_tensors(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def runs(omniglot: OmniglotImages) -> dict[str, Spied]:
    """Every solver with seed 3; MAML in a second configuration, in float64, and seed 4."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        out = {name: spied_run(omniglot, monkeypatch, name, seed=3) for name in SOLVERS}
        out["maml tuned"] = spied_run(
            omniglot, monkeypatch, "maml", seed=3, inner_lr=0.1, outer_lr=0.01, inner_steps=2
        )
        out["maml float64"] = spied_run(omniglot, monkeypatch, "maml", seed=3, dtype="float64")
        out["maml seed 4"] = spied_run(omniglot, monkeypatch, "maml", seed=4)
        out["finetune-head seed 4"] = spied_run(omniglot, monkeypatch, "finetune-head", seed=4)
    return out


def test_one_seed_gives_every_meta_solver_the_same_start_and_draws(runs) -> None:
    reference = runs["maml"]
    for name in [*META, "maml tuned"]:
        run = runs[name]
        assert run.init.keys() == reference.init.keys(), name
        assert all(torch.equal(run.init[k], reference.init[k]) for k in run.init), name
        for step, (mine, theirs) in enumerate(zip(run.draws, reference.draws)):
            assert equal_tensors(mine, theirs), f"{name}: training draw {step + 1} differs"
        assert run.result.init_fingerprint == reference.result.init_fingerprint, name
        assert run.result.stream_fingerprint == reference.result.stream_fingerprint, name
        assert run.result.task_keys == reference.result.task_keys, name


def test_the_baselines_share_the_initial_body_and_test_tasks_not_the_stream(runs) -> None:
    reference = runs["maml"]
    for name in BASELINES:
        run = runs[name]
        body = [k for k in reference.init if not k.startswith("head.")]
        assert body and all(torch.equal(run.init[k], reference.init[k]) for k in body), name
        assert run.result.init_fingerprint == reference.result.init_fingerprint, name
        assert run.result.task_keys == reference.result.task_keys, name
        assert run.result.stream_fingerprint != reference.result.stream_fingerprint, name
    head, full = (runs[name] for name in BASELINES)
    assert head.result.stream_fingerprint == full.result.stream_fingerprint
    assert all(equal_tensors(a, b) for a, b in zip(head.draws, full.draws))


def test_another_seed_gives_another_start_and_other_draws_on_the_same_test_tasks(runs) -> None:
    for one, other in (("maml", "maml seed 4"), ("finetune-head", "finetune-head seed 4")):
        a, b = runs[one], runs[other]
        assert not torch.equal(a.init["head.weight"], b.init["head.weight"])
        assert not equal_tensors(a.draws[0], b.draws[0])
        assert a.result.init_fingerprint != b.result.init_fingerprint
        assert a.result.stream_fingerprint != b.result.stream_fingerprint
        assert a.result.task_keys == b.result.task_keys


def test_the_record_is_what_the_run_consumed_in_any_dtype(runs) -> None:
    """The stored stream fingerprint is the digest of the draws the run actually trained
    on; in float64 the run draws the same tasks and records the same fingerprints."""
    for name in ("maml", "finetune-full", "maml float64"):
        run = runs[name]
        assert run.result.stream_fingerprint == pairing.draws_fingerprint(run.draws)
    plain, double = runs["maml"], runs["maml float64"]
    assert double.init["head.weight"].dtype == torch.float64
    assert double.result.init_fingerprint == plain.result.init_fingerprint
    assert double.result.stream_fingerprint == plain.result.stream_fingerprint
