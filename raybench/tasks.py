"""Pinned character splits and the on-device N-way K-shot task sampler.

The whole image cache lives as one tensor on the model's device (with its four rotations
precomputed), so a batch of tasks is one gather by index: no PIL, no DataLoader, no Python
loop over images. Task *indices* are drawn from a seeded ``torch.Generator``; the fixed
validation and test sets are drawn on the CPU from constant seeds, so every solver, run and
device sees exactly the same tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from raybench.errors import RaybenchError

SPLIT_SEED = 0  # pinned: changing it changes every published number
VAL_TASKS_SEED = 1
TEST_TASKS_SEED = 2


@dataclass(frozen=True)
class Split:
    """Three disjoint sets of character indices into the image cache."""

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def part(self, which: str) -> tuple[int, ...]:
        return {"train": self.train, "val": self.val, "test": self.test}[which]


def _seeded_order(indices: Sequence[int], names: Sequence[str], seed: int) -> list[int]:
    ordered = sorted(indices, key=lambda i: names[i])
    perm = torch.randperm(len(ordered), generator=torch.Generator().manual_seed(seed))
    return [ordered[i] for i in perm.tolist()]


def make_split(name: str, characters: Sequence[str], background: Sequence[bool]) -> Split:
    """``maml``: 1100/100/423 characters of all 50 alphabets (the MAML paper's protocol).
    ``lake``: train and validation from the 30 background alphabets (100 held out for
    validation), test = the 20 evaluation alphabets (Lake et al.'s protocol)."""
    n = len(characters)
    if name == "maml":
        if n <= 1200:
            raise RaybenchError(f"split 'maml' needs more than 1200 characters, found {n}")
        order = _seeded_order(range(n), characters, SPLIT_SEED)
        return Split(name, tuple(order[:1100]), tuple(order[1100:1200]), tuple(order[1200:]))
    if name == "lake":
        bg = [i for i in range(n) if background[i]]
        ev = sorted((i for i in range(n) if not background[i]), key=lambda i: characters[i])
        if len(bg) <= 100 or not ev:
            raise RaybenchError("split 'lake' needs background and evaluation alphabets")
        order = _seeded_order(bg, characters, SPLIT_SEED)
        return Split(name, tuple(order[100:]), tuple(order[:100]), tuple(ev))
    raise RaybenchError(f"unknown split {name!r} (splits: maml, lake)")


class TaskIndex(NamedTuple):
    """Which images make a batch of tasks; small, cheap to keep for fixed task sets."""

    classes: Tensor  # (B, N) positions in the split part's character list
    rotations: Tensor  # (B, N) multiples of 90 degrees
    drawings: Tensor  # (B, N, K+Q) drawing numbers, the first K are the support
    labels: Tensor  # (B, N) label given to each class slot: a random permutation per task

    def to(self, device: torch.device) -> TaskIndex:
        return TaskIndex(*(t.to(device) for t in self))

    def __len__(self) -> int:
        return self.classes.shape[0]

    def slice(self, start: int, stop: int) -> TaskIndex:
        return TaskIndex(*(t[start:stop] for t in self))


class TaskBatch(NamedTuple):
    """B tasks: support (B, N*K, channels, H, W) / (B, N*K) and query (B, N*Q, ...) /
    (B, N*Q); Omniglot's images are (1, 28, 28)."""

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def task(self, b: int) -> TaskBatch:
        return TaskBatch(*(t[b] for t in self))


class TaskSampler:
    """N-way K-shot tasks over one part of a split, gathered on ``device``."""

    def __init__(
        self,
        images: Tensor,
        characters: Sequence[int],
        *,
        ways: int,
        shots: int,
        query: int,
        rotations: bool,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        counts: Sequence[int] | None = None,
    ) -> None:
        """``images``: uint8, either (classes, drawings, H, W) (every class as many
        drawings, one channel: Omniglot) or, with ``counts``, (images, channels, H, W) with
        class ``c`` the ``counts[c]`` images after those of the classes before it (a folder
        of classes whose sizes differ)."""
        if ways > len(characters):
            raise RaybenchError(f"ways={ways} exceeds the {len(characters)} characters available")
        chosen = torch.as_tensor(list(characters), dtype=torch.long)
        if counts is None:  # (C, D, H, W): one channel, D drawings each
            n_classes, drawings = images.shape[:2]
            flat = images.reshape(n_classes * drawings, 1, *images.shape[2:])
            counts = [drawings] * n_classes
        else:
            flat = images
        all_counts = torch.as_tensor(list(counts), dtype=torch.long)
        self.counts = all_counts[chosen]  # this part's classes' sizes
        if shots + query > int(self.counts.min()):
            raise RaybenchError(
                f"shots + query exceeds the {int(self.counts.min())} drawings per class"
            )
        self.characters = tuple(characters)  # indices into the image cache
        in_flat = (torch.cumsum(all_counts, 0) - all_counts)[chosen]  # each class's first row
        self.starts = torch.cumsum(self.counts, 0) - self.counts  # ... and its first in ``pool``
        shift = torch.repeat_interleave(in_flat - self.starts, self.counts)
        pool = flat[torch.arange(len(shift)) + shift]  # (this part's images, channels, H, W)
        turns = range(4) if rotations else range(1)
        # (images, R, channels, H, W): rotation precomputed once, so sampling is one gather.
        self.pool = torch.stack([torch.rot90(pool, k, dims=(-2, -1)) for k in turns], 1)
        self.pool = self.pool.to(device)
        self.ways, self.shots, self.query = ways, shots, query
        self.device, self.dtype = device, dtype
        self.n_rotations = len(turns)
        self.max_count = int(self.counts.max())
        self.uniform = bool((self.counts == self.max_count).all())
        self._placed: dict[tuple[str, torch.device], Tensor] = {}

    def _on(self, name: str, device: torch.device) -> Tensor:
        """``counts`` or ``starts`` on ``device``, copied there once: sampling and gathering
        run every meta-step and never move them again."""
        key = (name, torch.device(device))
        if key not in self._placed:
            self._placed[key] = getattr(self, name).to(device)
        return self._placed[key]

    @property
    def n_classes(self) -> int:
        return len(self.characters)

    def sample_index(self, n_tasks: int, generator: torch.Generator) -> TaskIndex:
        device = generator.device
        n, k = self.ways, self.shots + self.query
        noise = torch.rand(n_tasks, self.n_classes, generator=generator, device=device)
        classes = noise.argsort(dim=1)[:, :n]
        rotations = torch.randint(
            self.n_rotations, (n_tasks, n), generator=generator, device=device
        )
        draw_noise = torch.rand(n_tasks, n, self.max_count, generator=generator, device=device)
        if not self.uniform:  # a class's missing places sort last: never drawn
            have = self._on("counts", device)[classes]  # (tasks, N)
            places = torch.arange(self.max_count, device=device)
            draw_noise = draw_noise.masked_fill(places >= have[:, :, None], 2.0)
        drawings = draw_noise.argsort(dim=2)[:, :, :k]
        labels = torch.rand(n_tasks, n, generator=generator, device=device).argsort(dim=1)
        return TaskIndex(classes, rotations, drawings, labels)

    def gather(self, index: TaskIndex) -> TaskBatch:
        index = index.to(self.device)
        b, n = index.classes.shape
        k, q = self.shots, self.query
        rows = self._on("starts", self.device)[index.classes][:, :, None] + index.drawings
        rot = index.rotations[:, :, None].expand(-1, -1, k + q)
        x = self.pool[rows, rot].to(self.dtype).div_(255)  # (B, N, K+Q, channels, H, W)
        y = index.labels[:, :, None].expand(-1, -1, k + q)
        return TaskBatch(
            x[:, :, :k].reshape(b, n * k, *x.shape[3:]),
            y[:, :, :k].reshape(b, n * k),
            x[:, :, k:].reshape(b, n * q, *x.shape[3:]),
            y[:, :, k:].reshape(b, n * q),
        )

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        return self.gather(self.sample_index(n_tasks, generator))

    @property
    def n_image_classes(self) -> int:
        """Classes of plain classification over this part: characters x rotations."""
        return self.n_classes * self.n_rotations

    def sample_images(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` random images with labels ``character * rotations + rotation``: the
        ordinary classification batches the fine-tuning baselines pre-train on."""
        device = generator.device
        classes = torch.randint(self.n_classes, (n,), generator=generator, device=device)
        rotations = torch.randint(self.n_rotations, (n,), generator=generator, device=device)
        if self.uniform:
            drawings = torch.randint(self.max_count, (n,), generator=generator, device=device)
        else:  # uniform over each class's own images
            have = self._on("counts", device)[classes]
            drawings = (torch.rand(n, generator=generator, device=device) * have).long()
            drawings = torch.minimum(drawings, have - 1)
        rows = self._on("starts", device)[classes] + drawings
        x = self.pool[rows, rotations].to(self.dtype).div_(255)
        return x, classes * self.n_rotations + rotations

    def task_keys(self, index: TaskIndex) -> list[str]:
        """One short hash per task of what it is made of (the characters' places in the
        image cache, rotations, drawings, labels): equal keys mean the same task, whichever
        run, solver or device drew it."""
        characters = torch.as_tensor(self.characters, dtype=torch.long)
        parts = (
            characters[index.classes.cpu()],
            index.rotations.cpu(),
            index.drawings.cpu().flatten(1),
            index.labels.cpu(),
        )
        rows = torch.cat([p.to(torch.int64).reshape(len(index), -1) for p in parts], 1)
        return [hashlib.sha1(row.numpy().tobytes()).hexdigest()[:16] for row in rows]

    def fixed_index(self, n_tasks: int, seed: int) -> TaskIndex:
        """The same tasks on every device and in every run: drawn on the CPU from ``seed``."""
        return self.sample_index(n_tasks, torch.Generator().manual_seed(seed))
