"""The fine-tuning baselines: pre-training gradient, fresh-head fine-tuning, data hygiene."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import HIDDEN, INNER_LR, WAYS, flat, rel_err, solver_for, tiny_batch

from raybench import pairing
from raybench.data import OmniglotImages
from raybench.solvers import METRICS, make_config
from raybench.tasks import TaskSampler, make_split
from raybench.train import train


def tiny_sampler() -> TaskSampler:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 20, 28, 28), generator=g, dtype=torch.uint8)
    return TaskSampler(
        images, range(10), ways=WAYS, shots=1, query=2, rotations=True,
        device=torch.device("cpu"), dtype=torch.float64,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["finetune-head", "finetune-full"])
def test_pretraining_is_plain_classification(name: str) -> None:
    model, solver = solver_for(name)
    sampler = tiny_sampler()
    params = solver.init_params(0, torch.device("cpu"), torch.float64, sampler)
    assert params["head.weight"].shape == (40, HIDDEN)  # 10 characters x 4 rotations
    x, y = solver.train_batch(sampler, 2, torch.Generator().manual_seed(1))
    assert x.shape == (2 * WAYS * 3, 1, 28, 28) and y.max() < 40
    grads, metrics = solver.meta_grad(params, (x, y))
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    expected = torch.autograd.grad(F.cross_entropy(model(p, x), y), list(p.values()))
    assert rel_err(flat(grads), torch.cat([e.reshape(-1) for e in expected])) < 1e-12
    assert set(metrics) == {"classifier_loss", "classifier_acc"}  # no meta-learning metric
    assert metrics["classifier_loss"].item() == pytest.approx(
        F.cross_entropy(model(params, x), y).item(), rel=1e-12
    )


@pytest.mark.parametrize("name", ["finetune-head", "finetune-full"])
def test_evaluation_fine_tunes_a_fresh_head(name: str) -> None:
    model, solver = solver_for(name)
    params = solver.init_params(0, torch.device("cpu"), torch.float64, tiny_sampler())
    batch = tiny_batch(2)
    metrics = solver.evaluate(params, batch, steps=3)
    names = [k for k in params if not k.startswith("head")]
    for b in range(2):
        sx, sy, qx, qy = batch.task(b)
        fast = {k: params[k].clone() for k in names}
        fast["head.weight"] = torch.zeros(WAYS, HIDDEN, dtype=torch.float64)
        fast["head.bias"] = torch.zeros(WAYS, dtype=torch.float64)
        start = {k: v.clone() for k, v in fast.items()}
        for _ in range(3):
            p = {k: v.clone().requires_grad_(True) for k, v in fast.items()}
            grads = dict(
                zip(p, torch.autograd.grad(F.cross_entropy(model(p, sx), sy), list(p.values())))
            )
            for k in fast:
                if name == "finetune-full" or k.startswith("head"):
                    fast[k] = fast[k] - INNER_LR * grads[k]
        with torch.no_grad():
            logits = model(fast, qx)
        assert metrics["query_loss_post"][b].item() == pytest.approx(
            F.cross_entropy(logits, qy).item(), rel=1e-10
        )
        assert (
            metrics["query_acc_post"][b].item() == (logits.argmax(-1) == qy).double().mean().item()
        )
        assert metrics["query_loss_pre"][b].item() == pytest.approx(
            torch.log(torch.tensor(3.0)).item()
        )
        moved = any(not torch.equal(fast[k], start[k]) for k in names)
        assert moved == (name == "finetune-full")


def test_pretraining_never_sees_test_characters(
    omniglot: OmniglotImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[tuple[int, ...], int]] = []
    original = TaskSampler.sample_images

    def spy(self: TaskSampler, n: int, generator: torch.Generator):
        x, y = original(self, n, generator)
        seen.append((self.characters, int(y.max())))
        return x, y

    monkeypatch.setattr(TaskSampler, "sample_images", spy)
    cfg = make_config("finetune-head", "smoke", {"hidden": 8, "test_tasks": 10})
    result = train(cfg, omniglot)
    assert result.status == "completed", result.error
    split = make_split("maml", omniglot.characters, omniglot.background)
    # every training draw, and those the pairing record fingerprints (raybench.pairing)
    assert len(seen) == cfg.meta_steps + pairing.STREAM_STEPS
    for characters, top_label in seen:
        assert characters == split.train
        assert not set(characters) & set(split.test)
        assert top_label < len(split.train) * 4
    assert result.test_tasks_n == 10 and 0 <= result.test_acc_mean <= 100
    # The training rows hold the classifier's loss under its own name; the meta-learning
    # columns of the training batches stay empty (a pre-training step has no query set).
    assert all(row["train_classifier_loss"] > 0 for row in result.curves)
    assert all(0 <= row["train_classifier_acc"] <= 100 for row in result.curves)
    assert all(row[f"train_{m}"] is None for row in result.curves for m in METRICS)
