"""A folder of classes as a few-shot data set: torchvision's ImageFolder layout
(``PATH/<class>/<image>``, or ``PATH/{train,val,test}/<class>/<image>`` when the folder
gives the split), checked file by file, resized once into a cache that every load checks.

Classes may hold different numbers of images, and images may be of any size and mode: each
is converted to the run's channels (1: grayscale, 3: RGB) and resized to a square of the
run's image size. What the folder holds is checked before anything is decoded, and each
problem is one line naming the file or folder: a path that is a file, an empty folder, a
class without images, a file that is not an image, an unreadable or truncated image, a class
named in two parts of a given split.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from raybench.atomic import atomic_write_bytes
from raybench.errors import RaybenchError

FORMAT_VERSION = 1
SPLIT_PARTS = ("train", "val", "test")
# What Pillow decodes and an ImageFolder holds; anything else in a class folder is refused.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
CHANNEL_MODES = {1: "L", 3: "RGB"}


class FolderDataError(RaybenchError):
    """The folder is not a usable data set: one line naming the file or folder and why."""


@dataclass(frozen=True)
class FolderLayout:
    """What the folder holds, before any image is decoded: each class's name (``part/name``
    when the folder gives the split), its files in name order, and its part of the split."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]
    parts: tuple[str, ...] | None  # each class's "train", "val" or "test"; None: not given

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(f) for f in self.files)


@dataclass(frozen=True, eq=False, repr=False)  # eq=False: arrays have no boolean ==
class ImageClasses:
    """A data set in memory, ragged: class ``c`` is ``images[offsets[c] : offsets[c] +
    counts[c]]``, uint8 of shape (images, channels, size, size)."""

    images: np.ndarray
    classes: tuple[str, ...]
    counts: tuple[int, ...]
    parts: tuple[str, ...] | None
    content_sha256: str  # of the pixels and the class list: what the data set is
    cache_path: Path

    @property
    def offsets(self) -> tuple[int, ...]:
        out, start = [], 0
        for count in self.counts:
            out.append(start)
            start += count
        return tuple(out)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[2])

    def __repr__(self) -> str:
        return (
            f"ImageClasses({len(self.classes)} classes, {len(self.images)} images "
            f"{self.channels}x{self.image_size}x{self.image_size}, "
            f"split {'given' if self.parts else 'not given'})"
        )


def _show(path: Path) -> str:
    return repr(str(path))[1:-1]  # control characters escaped: one line, whatever the name


def _visible(entries: list[os.DirEntry]) -> list[os.DirEntry]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _listing(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return _visible(list(it))
    except OSError as exc:
        raise FolderDataError(f"cannot read {_show(folder)}: {exc.strerror or exc}") from None


def _class_files(folder: Path) -> tuple[Path, ...]:
    files = []
    for entry in _listing(folder):
        path = Path(entry.path)
        if entry.is_dir():
            raise FolderDataError(
                f"{_show(path)} is a folder inside a class folder: a class holds images only"
            )
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise FolderDataError(
                f"{_show(path)} is not an image (suffixes read: "
                f"{', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        files.append(path)
    if not files:
        raise FolderDataError(f"class folder {_show(folder)} holds no images")
    return tuple(files)


def _class_folders(folder: Path) -> list[Path]:
    return [Path(e.path) for e in _listing(folder) if e.is_dir()]


def scan(root: str | Path) -> FolderLayout:
    """The folder's classes and files, every problem a :class:`FolderDataError`."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FolderDataError(f"no folder {_show(root)}: give a folder of class folders")
    if not root.is_dir():
        raise FolderDataError(
            f"{_show(root)} is a file, not a folder: give PATH/<class>/<image> "
            "or PATH/{train,val,test}/<class>/<image>"
        )
    top = _class_folders(root)
    given = [p for p in top if p.name in SPLIT_PARTS]
    if given:
        missing = [p for p in SPLIT_PARTS if p not in {g.name for g in given}]
        if missing:
            present = ", ".join(p + "/" for p in SPLIT_PARTS if p not in missing)
            absent = ", ".join(m + "/" for m in missing)
            raise FolderDataError(
                f"{_show(root)} has {present} but not {absent}: a given split has all three parts"
            )
        others = [p for p in top if p.name not in SPLIT_PARTS]
        if others:
            raise FolderDataError(
                f"{_show(others[0])} is beside train/, val/ and test/: with a given split "
                "every class is inside one of them"
            )
    classes, files, parts = [], [], []
    owner: dict[str, str] = {}
    for part in SPLIT_PARTS if given else (None,):
        folder = root / part if part else root
        found = _class_folders(folder)
        if not found:
            raise FolderDataError(
                f"{_show(folder)} holds no class folders (expected {_show(folder)}/<class>/<image>)"
            )
        for class_folder in found:
            name = class_folder.name
            if part is not None:
                if name in owner:
                    raise FolderDataError(
                        f"class {name!r} is in both {owner[name]}/ and {part}/ of {_show(root)}: "
                        "a class belongs to one part of a split"
                    )
                owner[name] = part
            classes.append(f"{part}/{name}" if part else name)
            files.append(_class_files(class_folder))
            parts.append(part)
    return FolderLayout(
        root=root,
        classes=tuple(classes),
        files=tuple(files),
        parts=tuple(parts) if given else None,  # type: ignore[arg-type]
    )


def _decode(path: Path, channels: int, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()  # a truncated file fails here, not later
            pixels = im.convert(CHANNEL_MODES[channels]).resize(
                (size, size), Image.Resampling.BILINEAR, reducing_gap=None
            )
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = "not an image Pillow can read" if isinstance(exc, UnidentifiedImageError) else exc
        raise FolderDataError(f"cannot read {_show(path)}: {reason}") from None
    array = np.asarray(pixels, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _listing_key(layout: FolderLayout) -> str:
    """What the cache is keyed by, cheaply (no file is read): every class and file name
    with the file's size and modification time, relative to the folder, so the same folder
    seen from another path is the same data. The cache's pixels are checked by their hash
    on every load, as Omniglot's are; a file rewritten with the same size and time is the
    one change this key cannot see."""
    digest = hashlib.sha256()
    for name, files in zip(layout.classes, layout.files, strict=True):
        digest.update(name.encode() + b"\0")
        for path in files:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def images_sha256(images: np.ndarray, classes: tuple[str, ...], counts: tuple[int, ...]) -> str:
    digest = hashlib.sha256(json.dumps([classes, counts]).encode())
    digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return digest.hexdigest()


def _read_cache(npy: Path, meta_path: Path, layout: FolderLayout) -> ImageClasses | None:
    """The cache if it is sound (the listing's key, the shape and the pixels' hash as
    recorded), else None: it is built again."""
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    classes, counts = layout.classes, layout.counts
    if (
        not isinstance(meta, dict)
        or meta.get("format_version") != FORMAT_VERSION
        or meta.get("classes") != list(classes)
        or meta.get("counts") != list(counts)
        or images.dtype != np.uint8
        or images.ndim != 4
        or len(images) != sum(counts)
        or images_sha256(images, classes, counts) != meta.get("content_sha256")
    ):
        return None
    return ImageClasses(images, classes, counts, layout.parts, meta["content_sha256"], npy)


def load_folder(
    root: str | Path, *, image_size: int, channels: int, cache: str | Path | None = None
) -> ImageClasses:
    """The folder's images, decoded the first time and from the cache after: converted to
    ``channels`` (1 or 3) and resized to ``image_size`` square (bilinear)."""
    if channels not in CHANNEL_MODES:
        raise FolderDataError(f"channels must be 1 or 3, not {channels}")
    layout = scan(root)
    if cache is None:
        from raybench.data.omniglot import cache_dir

        cache = cache_dir()
    key = hashlib.sha256(
        f"{FORMAT_VERSION}:{image_size}:{channels}:{_listing_key(layout)}".encode()
    ).hexdigest()[:20]
    folder = Path(cache) / "folders"
    npy, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    cached = _read_cache(npy, meta_path, layout)
    if cached is not None:
        return cached
    start = time.perf_counter()
    images = np.empty((sum(layout.counts), channels, image_size, image_size), dtype=np.uint8)
    row = 0
    for files in layout.files:
        for path in files:
            images[row] = _decode(path, channels, image_size)
            row += 1
    content = images_sha256(images, layout.classes, layout.counts)
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "what": f"a folder of classes, {channels} channel(s), bilinear {image_size}x{image_size}",
        "source": str(layout.root),
        "classes": list(layout.classes),
        "counts": list(layout.counts),
        "parts": list(layout.parts) if layout.parts else None,
        "content_sha256": content,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - start, 3),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(npy, buffer.getvalue())
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1).encode())
    except OSError as exc:
        raise FolderDataError(
            f"cannot write the data cache in {_show(folder)} ({exc.strerror or exc}); "
            "set RAYBENCH_CACHE to a writable folder"
        ) from None
    return ImageClasses(images, layout.classes, layout.counts, layout.parts, content, npy)


DEFAULT_FRACTIONS = (0.64, 0.16, 0.20)  # miniImageNet's and CIFAR-FS's 64/16/20 of 100


def split_classes(
    data: ImageClasses, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, tuple[int, ...]]:
    """Class indices of each part, ``train``, ``val`` and ``test``: the folder's own split
    where it gives one, else a pinned one. The pinned order ranks classes by a hash of their
    names, so it is the same on every machine and a class added to the folder moves no other
    class between parts; the first ``fractions[0]`` of that order (rounded) train, the next
    ``fractions[1]`` validate, the rest test."""
    if data.parts is not None:
        return {p: tuple(i for i, q in enumerate(data.parts) if q == p) for p in SPLIT_PARTS}
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise FolderDataError(
            f"split fractions must be three positive numbers summing to 1, not {fractions}"
        )
    n = len(data.classes)
    order = sorted(range(n), key=lambda i: hashlib.sha256(data.classes[i].encode()).hexdigest())
    n_train, n_val = round(fractions[0] * n), round(fractions[1] * n)
    parts = {
        "train": tuple(sorted(order[:n_train])),
        "val": tuple(sorted(order[n_train : n_train + n_val])),
        "test": tuple(sorted(order[n_train + n_val :])),
    }
    empty = [p for p, members in parts.items() if not members]
    if empty:
        raise FolderDataError(
            f"{n} classes split {fractions} leave {', '.join(empty)} without a class: "
            "a data set needs classes for training, validation and test"
        )
    return parts


def check_tasks(
    data: ImageClasses, parts: dict[str, tuple[int, ...]], *, ways: int, shots: int, query: int
) -> None:
    """One line naming what cannot make an N-way K-shot task: a part with fewer classes
    than ``ways``, or a class with fewer images than ``shots + query``."""
    for part in SPLIT_PARTS:
        if len(parts[part]) < ways:
            raise FolderDataError(
                f"the {part} part has {len(parts[part])} "
                f"class{'' if len(parts[part]) == 1 else 'es'}, fewer than ways={ways}"
            )
    need = shots + query
    for i, count in enumerate(data.counts):
        if count < need:
            raise FolderDataError(
                f"class {data.classes[i]!r} has {count} images, fewer than shots + query = "
                f"{shots} + {query}"
            )
