"""Splits and the vectorised task sampler, on the real Omniglot cache."""

from __future__ import annotations

import pytest
import torch

from raybench.data import OmniglotImages
from raybench.errors import RaybenchError
from raybench.tasks import TaskSampler, make_split


@pytest.mark.parametrize("name", ["maml", "lake"])
def test_splits_are_disjoint_complete_and_pinned(omniglot: OmniglotImages, name: str) -> None:
    split = make_split(name, omniglot.characters, omniglot.background)
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) == len(split.train)  # no duplicates
    assert train | val | test == set(range(omniglot.n_characters))
    again = make_split(name, omniglot.characters, omniglot.background)
    assert again == split
    # the split is a function of the character names, not of the cache order
    order = sorted(range(omniglot.n_characters), key=lambda i: omniglot.characters[i])[::-1]
    names = [omniglot.characters[i] for i in order]
    background = [omniglot.background[i] for i in order]
    shuffled = make_split(name, names, background)
    assert [names[i] for i in shuffled.train] == [omniglot.characters[i] for i in split.train]


def test_maml_split_sizes(omniglot: OmniglotImages) -> None:
    split = make_split("maml", omniglot.characters, omniglot.background)
    assert (len(split.train), len(split.val), len(split.test)) == (1100, 100, 423)
    # a seeded permutation, not the sorted order: test characters span many alphabets
    alphabets = {omniglot.characters[i].split("/")[0] for i in split.test}
    assert len(alphabets) > 30


def test_lake_split_uses_evaluation_alphabets_for_test(omniglot: OmniglotImages) -> None:
    split = make_split("lake", omniglot.characters, omniglot.background)
    assert (len(split.train), len(split.val), len(split.test)) == (864, 100, 659)
    assert all(omniglot.background[i] for i in split.train + split.val)
    assert not any(omniglot.background[i] for i in split.test)


def test_unknown_split_is_a_clear_error(omniglot: OmniglotImages) -> None:
    with pytest.raises(RaybenchError, match="unknown split"):
        make_split("nope", omniglot.characters, omniglot.background)


def sampler_for(omniglot: OmniglotImages, rotations: bool = True, **kw) -> TaskSampler:
    split = make_split("maml", omniglot.characters, omniglot.background)
    settings = {"ways": 5, "shots": 2, "query": 3, **kw}
    return TaskSampler(
        omniglot.images, split.train, rotations=rotations, device=torch.device("cpu"), **settings
    )


def test_batch_shapes_and_label_layout(omniglot: OmniglotImages) -> None:
    sampler = sampler_for(omniglot)
    batch = sampler.sample(4, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (4, 10, 1, 28, 28)
    assert batch.query_x.shape == (4, 15, 1, 28, 28)
    assert batch.support_x.dtype == torch.float32
    assert batch.support_x.min() >= 0 and batch.support_x.max() == 1  # strokes are 1
    assert batch.support_x.mean() < 0.3  # mostly background
    for b in range(4):
        assert sorted(batch.support_y[b].tolist()) == sorted(list(range(5)) * 2)
        assert sorted(batch.query_y[b].tolist()) == sorted(list(range(5)) * 3)
    # labels are a fresh permutation per task, not always 0..N-1 in class order
    firsts = {tuple(batch.support_y[b, ::2].tolist()) for b in range(4)}
    more = sampler.sample(32, torch.Generator().manual_seed(1))
    firsts |= {tuple(more.support_y[b, ::2].tolist()) for b in range(32)}
    assert len(firsts) > 10


def test_gather_matches_a_plain_loop_over_images(omniglot: OmniglotImages) -> None:
    """Each image is drawing d of character c rotated by k*90 degrees, support and query of a
    class from the same character and rotation, distinct drawings, distinct classes."""
    split = make_split("maml", omniglot.characters, omniglot.background)
    sampler = sampler_for(omniglot)
    index = sampler.sample_index(6, torch.Generator().manual_seed(3))
    batch = sampler.gather(index)
    for b in range(6):
        assert len(set(index.classes[b].tolist())) == 5
        for slot in range(5):
            char = split.train[index.classes[b, slot].item()]
            k = index.rotations[b, slot].item()
            draws = index.drawings[b, slot].tolist()
            assert len(set(draws)) == 5
            label = index.labels[b, slot].item()
            for j, d in enumerate(draws):
                expected = torch.rot90(omniglot.images[char, d], k, dims=(0, 1)).float() / 255
                if j < 2:
                    got, y = batch.support_x[b, slot * 2 + j, 0], batch.support_y[b, slot * 2 + j]
                else:
                    i = slot * 3 + j - 2
                    got, y = batch.query_x[b, i, 0], batch.query_y[b, i]
                assert torch.equal(got, expected)
                assert y.item() == label


def test_rotations_switch(omniglot: OmniglotImages) -> None:
    on = sampler_for(omniglot).sample_index(64, torch.Generator().manual_seed(0))
    off = sampler_for(omniglot, rotations=False).sample_index(64, torch.Generator().manual_seed(0))
    assert set(on.rotations.unique().tolist()) == {0, 1, 2, 3}
    assert off.rotations.eq(0).all()


def test_sampling_is_seeded_and_fixed_sets_are_fixed(omniglot: OmniglotImages) -> None:
    sampler = sampler_for(omniglot)
    a = sampler.sample(3, torch.Generator().manual_seed(7))
    b = sampler.sample(3, torch.Generator().manual_seed(7))
    c = sampler.sample(3, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.support_x, c.support_x)
    first = sampler.fixed_index(50, seed=2)
    second = sampler_for(omniglot).fixed_index(50, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(first, second))


def test_impossible_tasks_are_clear_errors(omniglot: OmniglotImages) -> None:
    with pytest.raises(RaybenchError, match="drawings"):
        sampler_for(omniglot, shots=10, query=11)


def ragged_pool(seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Twelve classes of 3 to 9 random RGB images, 6x6, flat with their counts."""
    counts = [3 + (c * 5) % 7 for c in range(12)]
    images = torch.randint(
        0, 256, (sum(counts), 3, 6, 6), generator=torch.Generator().manual_seed(seed)
    )
    return images.to(torch.uint8), counts


def test_ragged_classes_draw_only_their_own_images() -> None:
    """With classes of different sizes, every drawing is one of its class's images (never a
    neighbour's), every image of a class can be drawn, and the batch is what a plain loop
    over the flat images gathers, rotated."""
    images, counts = ragged_pool()
    starts = [sum(counts[:c]) for c in range(12)]
    part = [1, 2, 4, 5, 7, 8, 10, 11]  # a part of the classes, in cache order
    sampler = TaskSampler(
        images, part, ways=3, shots=1, query=2, rotations=True,
        device=torch.device("cpu"), counts=counts,
    )  # fmt: skip
    index = sampler.sample_index(400, torch.Generator().manual_seed(3))
    batch = sampler.gather(index)
    assert batch.support_x.shape == (400, 3, 3, 6, 6) and batch.query_x.shape == (400, 6, 3, 6, 6)
    seen: dict[int, set[int]] = {c: set() for c in part}
    for b in range(400):
        for slot in range(3):
            c = part[int(index.classes[b, slot])]
            drawn = index.drawings[b, slot].tolist()
            assert len(set(drawn)) == 3 and max(drawn) < counts[c], (c, drawn)
            seen[c].update(drawn)
            label = int(index.labels[b, slot])
            k = int(index.rotations[b, slot])
            expected = [torch.rot90(images[starts[c] + d], k, dims=(-2, -1)) for d in drawn]
            assert torch.equal(batch.support_x[b, slot], expected[0].float() / 255)
            assert torch.equal(
                batch.query_x[b, 2 * slot : 2 * slot + 2], torch.stack(expected[1:]).float() / 255
            )
            assert int(batch.support_y[b, slot]) == label
    assert all(seen[c] == set(range(counts[c])) for c in part)  # every image reachable
    x, y = sampler.sample_images(2000, torch.Generator().manual_seed(4))
    assert x.shape == (2000, 3, 6, 6) and set(y.tolist()) == set(range(len(part) * 4))


def test_equal_classes_as_a_flat_pool_draw_what_omniglot_draws(omniglot: OmniglotImages) -> None:
    """The same images given as Omniglot's (classes, drawings, H, W) or flat with equal
    counts: the same tasks, bit for bit, from the same generator."""
    split = make_split("maml", omniglot.characters, omniglot.background)
    settings = {"ways": 5, "shots": 1, "query": 3, "rotations": True, "device": torch.device("cpu")}
    dense = TaskSampler(omniglot.images, split.val, **settings)
    n = omniglot.images.shape[0]
    flat = omniglot.images.reshape(n * 20, 1, 28, 28)
    ragged = TaskSampler(flat, split.val, counts=[20] * n, **settings)
    a = dense.sample_index(16, torch.Generator().manual_seed(5))
    b = ragged.sample_index(16, torch.Generator().manual_seed(5))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert all(torch.equal(s, t) for s, t in zip(dense.gather(a), ragged.gather(b)))
    xa, ya = dense.sample_images(64, torch.Generator().manual_seed(6))
    xb, yb = ragged.sample_images(64, torch.Generator().manual_seed(6))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize(
    ("channels", "size", "side"), [(1, 28, 1), (3, 32, 2), (3, 84, 5), (1, 20, 1)]
)
def test_the_network_takes_the_data_sets_images(channels: int, size: int, side: int) -> None:
    """The conv4 network's input follows the images (channels, side) and its head the
    features left after four poolings; Omniglot's network is the one it always was."""
    from raybench.models import build_model

    model = build_model(5, 8, in_channels=channels, image_size=size)
    params = model.init_params(0, torch.device("cpu"), torch.float32)
    assert params["head.weight"].shape == (5, 8 * side * side)
    assert params["features.0.0.weight"].shape == (8, channels, 3, 3)
    logits = model(params, torch.rand(7, channels, size, size))
    assert logits.shape == (7, 5)
    if (channels, size) == (1, 28):
        plain = build_model(5, 8).init_params(0, torch.device("cpu"), torch.float32)
        assert all(torch.equal(plain[k], params[k]) for k in plain)


def test_images_too_small_for_four_poolings_are_refused() -> None:
    from raybench.models import build_model

    with pytest.raises(ValueError, match="vanish in four 2x2 poolings"):
        build_model(5, 8, image_size=15)
