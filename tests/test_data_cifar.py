"""CIFAR-FS and FC100 from a generated archive in CIFAR-100's binary layout (offline):
every class of the shipped lists, each with exactly its own records' pixels, split as the
lists say; a missing, truncated or foreign archive is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raybench.data.cifar import RECORD, class_lists, load_cifar
from raybench.data.folder import FolderDataError

# CIFAR-100's hierarchy: each superclass and its five classes.
HIERARCHY = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
FINE = sorted(c for members in HIERARCHY.values() for c in members)  # CIFAR's order
COARSE = sorted(HIERARCHY)
SUPER = {c: s for s, members in HIERARCHY.items() for c in members}


def make_archive(folder: Path, per_class: tuple[int, int] = (2, 1)) -> dict[str, list[np.ndarray]]:
    """train.bin and test.bin with ``per_class`` records of every class, interleaved, each
    image's pixels a function of its class and place; returns each class's images."""
    rng = np.random.default_rng(0)
    images: dict[str, list[np.ndarray]] = {c: [] for c in FINE}
    folder.mkdir(parents=True)
    for file, n in zip(("train.bin", "test.bin"), per_class, strict=True):
        records = []
        for _ in range(n):
            for c in rng.permutation(FINE):
                pixels = rng.integers(0, 256, 3072, dtype=np.uint8)
                head = np.array([COARSE.index(SUPER[c]), FINE.index(c)], dtype=np.uint8)
                records.append(np.concatenate([head, pixels]))
                images[c].append(pixels.reshape(3, 32, 32))
        np.concatenate(records).tofile(folder / file)
    (folder / "fine_label_names.txt").write_text("\n".join(FINE) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(COARSE) + "\n")
    return images


def test_the_shipped_lists_split_cifar_100_whole() -> None:
    fs = class_lists("cifar-fs")
    assert [len(fs[p]) for p in ("train", "val", "test")] == [64, 16, 20]
    assert sorted(c for part in fs.values() for c in part) == FINE  # disjoint, every class once
    fc = class_lists("fc100")
    assert [len(fc[p]) for p in ("train", "val", "test")] == [12, 4, 4]
    assert sorted(s for part in fc.values() for s in part) == COARSE
    # the paper's superclass indices, in coarse_label_names.txt's order
    assert [COARSE.index(s) for s in fc["train"]] == [1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19]
    assert [COARSE.index(s) for s in fc["val"]] == [8, 11, 13, 16]
    assert [COARSE.index(s) for s in fc["test"]] == [0, 7, 12, 14]


@pytest.mark.parametrize(("name", "sizes"), [("cifar-fs", (64, 16, 20)), ("fc100", (60, 20, 20))])
def test_a_set_is_its_classes_records_split_by_its_list(
    tmp_path: Path, name: str, sizes: tuple[int, int, int]
) -> None:
    made = make_archive(tmp_path / "cifar-100-binary")
    data = load_cifar(name, tmp_path)  # the archive's own folder name is found too
    assert data.images.shape == (300, 3, 32, 32) and data.counts == (3,) * 100
    assert [data.parts.count(p) for p in ("train", "val", "test")] == list(sizes)
    for c, start in zip(data.classes, data.offsets, strict=True):
        assert np.array_equal(data.images[start : start + 3], np.stack(made[c])), c
    if name == "fc100":  # a part's classes are its superclasses' classes, nothing else
        lists = class_lists("fc100")
        for part in ("train", "val", "test"):
            shown = {c for c, p in zip(data.classes, data.parts, strict=True) if p == part}
            assert shown == {c for s in lists[part] for c in HIERARCHY[s]}
    again = load_cifar(name, tmp_path / "cifar-100-binary")
    assert again.content_sha256 == data.content_sha256


def test_a_missing_truncated_or_foreign_archive_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FolderDataError) as exc:
        load_cifar("cifar-fs", tmp_path)
    assert "no CIFAR-100 binary archive in" in str(exc.value) and "never downloads" in str(
        exc.value
    )
    folder = tmp_path / "c"
    make_archive(folder)
    data = (folder / "test.bin").read_bytes()
    (folder / "test.bin").write_bytes(data[: RECORD * 10 + 7])
    with pytest.raises(FolderDataError, match="truncated or not CIFAR-100's binary layout"):
        load_cifar("fc100", folder)
    (folder / "test.bin").write_bytes(data)
    (folder / "coarse_label_names.txt").write_text("\n".join(COARSE[:19]) + "\n")
    with pytest.raises(FolderDataError, match="lists 19 distinct names, not 20"):
        load_cifar("fc100", folder)
    with pytest.raises(FolderDataError, match="unknown CIFAR-100 set 'cifar-10'"):
        load_cifar("cifar-10", folder)
