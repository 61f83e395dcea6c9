"""A folder of classes as a data set (raybench.data.folder): generated offline, images of
mixed sizes and modes; every bad input a one-line error naming the file or folder; the
cache built once, reused, and rebuilt when the folder's content or the cache changes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raybench.data import folder as data_folder
from raybench.data.folder import FolderDataError, load_folder, scan

MODES = ("L", "RGB", "RGBA", "P")
SIZES = ((28, 28), (40, 31), (17, 50), (64, 64))


def image_bytes(mode: str, size: tuple[int, int], value: int, fmt: str = "PNG") -> bytes:
    im = Image.new("RGB", size, (value, (value * 7) % 256, (value * 13) % 256))
    im = im.convert(mode) if mode != "RGB" else im
    if fmt == "JPEG" and im.mode in ("RGBA", "P"):
        im = im.convert("RGB")
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def make_folder(root: Path, classes: int = 30, split: bool = False) -> Path:
    """``classes`` classes of 4-9 solid-colour images each, of mixed sizes, modes and
    formats; with ``split`` the classes go to train/, val/ and test/ (60/20/20)."""
    for c in range(classes):
        part = ("train", "val", "test")[0 if c < 0.6 * classes else 1 if c < 0.8 * classes else 2]
        folder = root / part / f"class{c:02d}" if split else root / f"class{c:02d}"
        folder.mkdir(parents=True)
        for i in range(4 + c % 6):
            fmt = "JPEG" if (c + i) % 5 == 0 else "PNG"
            data = image_bytes(MODES[(c + i) % 4], SIZES[(c * 3 + i) % 4], (c * 8 + i) % 256, fmt)
            (folder / f"img{i}.{fmt.lower()}").write_bytes(data)
    return root


def one_line(exc: pytest.ExceptionInfo, *words: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_a_folder_loads_ragged_in_its_channels_and_size(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    data = load_folder(root, image_size=32, channels=3, cache=tmp_path / "cache")
    assert data.classes == tuple(f"class{c:02d}" for c in range(30))
    assert data.counts == tuple(4 + c % 6 for c in range(30)) and data.parts is None
    assert data.images.shape == (sum(data.counts), 3, 32, 32) and data.images.dtype == np.uint8
    offsets = data.offsets
    assert offsets[0] == 0 and offsets[5] == sum(data.counts[:5])
    for c, i in ((3, 0), (7, 2), (29, 5)):  # each pixel what Pillow makes of that file
        path = sorted((root / f"class{c:02d}").iterdir())[i]
        with Image.open(path) as im:
            expected = np.asarray(
                im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=None)
            ).transpose(2, 0, 1)
        assert np.array_equal(data.images[offsets[c] + i], expected), (c, i)
    gray = load_folder(root, image_size=20, channels=1, cache=tmp_path / "cache")
    assert gray.images.shape == (sum(data.counts), 1, 20, 20)
    assert gray.content_sha256 != data.content_sha256


def test_a_given_split_is_kept(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data", classes=10, split=True)
    layout = scan(root)
    assert layout.parts == ("train",) * 6 + ("val",) * 2 + ("test",) * 2
    assert layout.classes[0] == "train/class00" and layout.classes[-1] == "test/class09"
    data = load_folder(root, image_size=16, channels=1, cache=tmp_path / "cache")
    assert data.parts == layout.parts


def test_the_cache_is_used_checked_and_rebuilt(tmp_path: Path, monkeypatch) -> None:
    root = make_folder(tmp_path / "data", classes=6)
    cache = tmp_path / "cache"
    first = load_folder(root, image_size=16, channels=1, cache=cache)
    (npy,) = (cache / "folders").glob("*.npy")

    def no_decoding(*args):
        raise AssertionError("decoded although the cache holds the folder")

    with monkeypatch.context() as m:
        m.setattr(data_folder, "_decode", no_decoding)
        m.setattr(Path, "read_bytes", no_decoding)  # nor is any image file read
        again = load_folder(root, image_size=16, channels=1, cache=cache)
        moved = root.rename(tmp_path / "elsewhere")  # another path, the same data
        assert load_folder(moved, image_size=16, channels=1, cache=cache).content_sha256 == (
            first.content_sha256
        )
        moved.rename(root)
    assert np.array_equal(again.images, first.images)
    assert again.content_sha256 == first.content_sha256
    # a changed pixel in the cache: not used, built again from the folder
    raw = bytearray(npy.read_bytes())
    raw[-1] ^= 0xFF
    npy.write_bytes(bytes(raw))
    rebuilt = load_folder(root, image_size=16, channels=1, cache=cache)
    assert np.array_equal(rebuilt.images, first.images)
    # a changed image in the folder: another key, another content
    (root / "class02" / "img1.png").write_bytes(image_bytes("L", (28, 28), 200))
    changed = load_folder(root, image_size=16, channels=1, cache=cache)
    assert changed.content_sha256 != first.content_sha256
    assert len(list((cache / "folders").glob("*.npy"))) == 2


def bad(tmp_path: Path, case: str) -> Path:
    """A folder (or path) with one problem, the rest a good data set."""
    root = make_folder(tmp_path / case, classes=5, split=case.startswith("split"))
    if case == "empty":
        empty = tmp_path / "empty-folder"
        empty.mkdir()
        return empty
    if case == "a file":
        path = tmp_path / "data.zip"
        path.write_bytes(b"PK")
        return path
    if case == "missing":
        return tmp_path / "no-such-folder"
    if case == "class without images":
        (root / "class99").mkdir()
    elif case == "not an image":
        (root / "class01" / "notes.txt").write_text("labels")
    elif case == "junk with an image's name":
        (root / "class01" / "junk.png").write_bytes(b"not a png at all")
    elif case == "truncated":
        data = image_bytes("RGB", (64, 64), 90)
        (root / "class02" / "cut.png").write_bytes(data[: len(data) // 2])
    elif case == "folder in a class":
        (root / "class03" / "more").mkdir()
    elif case == "split: class twice":
        (root / "test" / "class00").mkdir()
        (root / "test" / "class00" / "a.png").write_bytes(image_bytes("L", (28, 28), 1))
    elif case == "split: a part missing":
        for path in (root / "val").rglob("*"):
            if path.is_file():
                path.unlink()
        for path in sorted((root / "val").rglob("*"), reverse=True):
            path.rmdir()
        (root / "val").rmdir()
    elif case == "split: a class beside the parts":
        (root / "class77").mkdir()
        (root / "class77" / "a.png").write_bytes(image_bytes("L", (28, 28), 1))
    return root


BAD = {
    "missing": ("no folder", "no-such-folder"),
    "a file": ("is a file", "data.zip"),
    "empty": ("holds no class folders", "empty-folder"),
    "class without images": ("holds no images", "class99"),
    "not an image": ("is not an image", "notes.txt"),
    "junk with an image's name": ("cannot read", "junk.png", "not an image Pillow can read"),
    "truncated": ("cannot read", "cut.png"),
    "folder in a class": ("is a folder inside a class folder", "more"),
    "split: class twice": ("'class00' is in both train/ and test/",),
    "split: a part missing": ("has train/, test/ but not val/",),
    "split: a class beside the parts": ("class77", "is beside train/, val/ and test/"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_what_is_wrong(tmp_path: Path, case: str) -> None:
    path = bad(tmp_path, case)
    cache = tmp_path / "cache"
    with pytest.raises(FolderDataError) as exc:
        load_folder(path, image_size=16, channels=1, cache=cache)
    one_line(exc, *BAD[case])
    assert not list(cache.rglob("*.npy")), "nothing is written for a bad folder"


def test_channels_other_than_one_or_three_are_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data", classes=5)
    with pytest.raises(FolderDataError) as exc:
        load_folder(root, image_size=16, channels=2, cache=tmp_path / "cache")
    one_line(exc, "channels must be 1 or 3")


def test_a_pinned_split_by_the_classes_names(tmp_path: Path) -> None:
    data = load_folder(make_folder(tmp_path / "a"), image_size=8, channels=1, cache=tmp_path)
    parts = data_folder.split_classes(data)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [19, 5, 6]  # 64/16/20 of 30
    assert sorted(sum(parts.values(), ())) == list(range(30))  # disjoint, every class
    # a class added moves no other class between parts
    more = make_folder(tmp_path / "b", classes=31)
    bigger = load_folder(more, image_size=8, channels=1, cache=tmp_path)
    again = data_folder.split_classes(bigger)
    named = {p: {data.classes[i] for i in parts[p]} for p in parts}
    named_again = {p: {bigger.classes[i] for i in again[p]} for p in again}
    moved = sum(len(named[p] - named_again[p]) for p in parts)
    assert moved <= 1, (named, named_again)  # only where a part's rounded size changed
    given = load_folder(
        make_folder(tmp_path / "c", classes=10, split=True),
        image_size=8,
        channels=1,
        cache=tmp_path,
    )
    assert data_folder.split_classes(given) == {
        "train": tuple(range(6)),
        "val": (6, 7),
        "test": (8, 9),
    }


def test_what_cannot_make_a_task_is_one_line(tmp_path: Path) -> None:
    data = load_folder(
        make_folder(tmp_path / "a", classes=8), image_size=8, channels=1, cache=tmp_path
    )
    parts = data_folder.split_classes(data)  # 5/1/2
    with pytest.raises(FolderDataError) as exc:
        data_folder.check_tasks(data, parts, ways=2, shots=1, query=1)
    one_line(exc, "the val part has 1 class, fewer than ways=2")
    wide = data_folder.split_classes(data, (0.5, 0.25, 0.25))
    data_folder.check_tasks(data, wide, ways=2, shots=1, query=3)  # 4 images at least: fine
    with pytest.raises(FolderDataError) as exc:
        data_folder.check_tasks(data, wide, ways=2, shots=1, query=4)
    one_line(exc, "class 'class00' has 4 images, fewer than shots + query = 1 + 4")
    with pytest.raises(FolderDataError) as exc:
        data_folder.split_classes(data, (0.9, 0.1, 0.0))
    one_line(exc, "split fractions must be three positive numbers")
    with pytest.raises(FolderDataError) as exc:
        data_folder.split_classes(data, (0.9, 0.05, 0.05))
    one_line(exc, "leave val without a class")
