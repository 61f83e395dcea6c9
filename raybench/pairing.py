"""What makes the runs of one seed common random numbers, recorded so it can be checked.

Within a setting, seed ``s`` gives every solver and every configuration of it the same
initial network (``models.init_params(seed)``), the same stream of training draws (the
run's generator, seeded with ``s`` and consumed only by ``Solver.train_batch``) and the
same fixed validation and test tasks. That is why two configurations are compared seed by
seed (:mod:`raybench.report.significance`). The report does not take it on trust: each run
stores two short fingerprints, of its initial network and of its first training draws, and
runs are paired only where they agree.

The baselines pre-train on labelled images, not tasks: they share the initial network and
the test tasks with the meta-learners of the same seed, but not the training stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch
from torch import Tensor

from raybench.models import FunctionalModel
from raybench.tasks import TaskSampler

STREAM_STEPS = 2  # training draws fingerprinted: enough to tell two streams apart


def _digest(tensors: Iterable[Tensor]) -> str:
    sha = hashlib.sha1()
    for t in tensors:
        t = t.detach().cpu()
        if t.is_floating_point():
            # Images are stored as 8-bit pixels and weights drawn in float32: both read
            # back exactly in float32, so the fingerprint does not depend on the run's dtype.
            t = t.to(torch.float32)
        sha.update(str(tuple(t.shape)).encode())
        sha.update(t.contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def init_fingerprint(model: FunctionalModel, seed: int) -> str:
    """The network every solver starts from with ``seed``, in float32 on the CPU: equal
    for every solver and configuration of a setting (same architecture), whatever its
    device or dtype."""
    params = model.init_params(seed, torch.device("cpu"), torch.float32)
    return _digest(params[name] for name in sorted(params))


def batch_tensors(batch: object) -> list[Tensor]:
    """The tensors of one training draw (a task batch, or images and labels)."""
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, (tuple, list)):
        return [t for part in batch for t in batch_tensors(part)]
    raise TypeError(f"a training draw of type {type(batch).__name__}")


def stream_fingerprint(
    draw: object, train: TaskSampler, n_tasks: int, seed: int, device: torch.device
) -> str:
    """The first ``STREAM_STEPS`` training draws of a run with ``seed``, from a generator
    of its own (the run's is untouched). ``draw`` is the solver's ``train_batch``. Images
    are hashed as pixels (``x * 255``), so the fingerprint holds in any dtype."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return draws_fingerprint(
        draw(train, n_tasks, generator)  # type: ignore[operator]
        for _ in range(STREAM_STEPS)
    )


def draws_fingerprint(draws: Iterable[object]) -> str:
    """One digest of a sequence of training draws, images as pixels."""
    return _digest(
        (t * 255).round().to(torch.int16) if t.is_floating_point() else t
        for batch in draws
        for t in batch_tensors(batch)
    )
