"""What the two fine-tuning baselines share: pre-train a classifier, fine-tune a new head.

Not a meta-learner: the network is trained as an ordinary classifier over every training
class (each character in each of its rotations is a class), then, for each evaluation task,
its head is replaced by a fresh N-way head that is fine-tuned on the support set with the
run's ``inner_lr`` for ``eval_inner_steps`` steps, either alone or with the whole network.
The fresh head starts at zero, so the first step sets it to class-mean features (no extra
randomness, and the same start for every task and run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.func import grad_and_value

from raybench.config import Bound, setting
from raybench.models import Params
from raybench.solvers.base import Loss, Metrics, Solver, accuracy, sgd_step
from raybench.tasks import TaskBatch, TaskSampler

HEAD = ("head.weight", "head.bias")


@dataclass(frozen=True)
class FinetuneOptions:
    batch_images: int | None = setting(
        None,
        Bound(int, 1, 10**6, optional=True, help="images per pre-training step "
              "(default: meta_batch x ways x (shots + query), a meta-batch's worth)"),
    )  # fmt: skip


class Finetune(Solver):
    """Shared by ``finetune-head`` and ``finetune-full``; subclasses set ``whole_network``."""

    family = "baseline"
    Options = FinetuneOptions
    whole_network: ClassVar[bool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        head = self.model.module.head
        self.ways, self.hidden = head.out_features, head.in_features
        self.pretrain_characters: tuple[int, ...] = ()

    def init_params(
        self, seed: int, device: torch.device, dtype: torch.dtype, train: TaskSampler
    ) -> Params:
        """The network with a pre-training head over all training classes."""
        self.pretrain_characters = train.characters
        params = self.model.init_params(seed, device, dtype)
        n_classes = train.n_image_classes
        generator = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(self.hidden)  # nn.Linear's default initialisation
        for name, shape in (("head.weight", (n_classes, self.hidden)), ("head.bias", (n_classes,))):
            values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
            params[name] = (bound * values).to(device=device, dtype=dtype)
        return params

    def train_batch(
        self, train: TaskSampler, n_tasks: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """A batch of labelled training images, as many as ``n_tasks`` tasks hold."""
        per_task = train.ways * (train.shots + train.query)
        return train.sample_images(self.options.batch_images or n_tasks * per_task, generator)

    def meta_grad(self, params: Params, batch: tuple[Tensor, Tensor]) -> tuple[Params, Metrics]:
        """Gradient of the classification loss on the batch, reported under its own name
        (``classifier_loss``, ``classifier_acc``): a pre-training step has no support or
        query set and no adaptation, so it reports none of the meta-learning metrics."""
        x, y = batch
        grads, (loss, logits) = grad_and_value(self.model.loss, has_aux=True)(params, x, y)
        return grads, {
            "classifier_loss": loss.detach().reshape(1),
            "classifier_acc": accuracy(logits.detach(), y).reshape(1),
        }

    def adapt_task(self, params: Params, x: Tensor, y: Tensor, steps: int) -> tuple[Params, Loss]:
        """SGD on the support set, of the head alone or of everything."""
        fast = params
        before: Loss | None = None
        for _ in range(steps):
            grads, (loss, logits) = self.support_grad(fast, x, y)
            if before is None:
                before = (loss, logits)
            if not self.whole_network:
                grads = {k: (g if k in HEAD else torch.zeros_like(g)) for k, g in grads.items()}
            fast = sgd_step(fast, grads, self.inner_lr)
        if before is None:
            before = self.model.loss(params, x, y)
        return fast, before

    def evaluate(
        self, params: Params, batch: TaskBatch, steps: int, adaptation: str = "plain"
    ) -> Metrics:
        """Replace the pre-training head by a zero N-way head, then fine-tune per task.
        The baseline *is* its fine-tuning procedure, so it is used whatever
        ``adaptation`` says (which is about meta-solvers' initialisations)."""
        fresh = {k: v for k, v in params.items() if k not in HEAD}
        like = next(iter(params.values()))
        fresh["head.weight"] = like.new_zeros(self.ways, self.hidden)
        fresh["head.bias"] = like.new_zeros(self.ways)
        return super().evaluate(fresh, batch, steps, adaptation="solver")
