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
