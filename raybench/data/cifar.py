"""CIFAR-FS and FC100, built from a local copy of CIFAR-100's binary archive.

The binary archive (``train.bin``, ``test.bin``, ``fine_label_names.txt``,
``coarse_label_names.txt``; "CIFAR-100 binary version" on the CIFAR page, unpacked) is raw
bytes: each record a coarse label byte, a fine label byte and 3072 pixel bytes (the red,
green and blue 32x32 planes, rows in order). Nothing is unpickled, and nothing is
downloaded: a missing archive is one line naming the folder and the files it needs.

Both sets use all 600 images of each class (the training and the test file together), split
by the class lists in ``raybench/data/splits/`` (each file names its sources).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raybench.data.folder import SPLIT_PARTS, FolderDataError, ImageClasses, images_sha256

RECORD = 2 + 3 * 32 * 32
FILES = ("train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt")
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
SETS = {"cifar-fs": "fine", "fc100": "coarse"}  # which labels each set's lists name
PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


def class_lists(name: str) -> dict[str, list[str]]:
    """A set's shipped split: part -> the class (or superclass) names it lists."""
    parts: dict[str, list[str]] = {}
    current = None
    for line in (SPLITS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = parts.setdefault(line.strip("[]"), [])
        elif current is not None:
            current.append(line)
    return parts


def _archive(folder: Path) -> Path:
    """The folder holding the archive's files: ``folder`` itself or its
    ``cifar-100-binary/``, as the archive unpacks."""
    for candidate in (folder, folder / "cifar-100-binary"):
        if all((candidate / f).is_file() for f in FILES):
            return candidate
    raise FolderDataError(
        f"no CIFAR-100 binary archive in {folder}: it needs {', '.join(FILES)} (the "
        f"'CIFAR-100 binary version' from {PAGE}, unpacked there); raybench never downloads it"
    )


def _names(path: Path, expected: int) -> list[str]:
    names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip()]
    if len(names) != expected or len(set(names)) != expected:
        raise FolderDataError(f"{path} lists {len(names)} distinct names, not {expected}")
    return names


def _records(path: Path, fine_names: int, coarse_names: int) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % RECORD:
        raise FolderDataError(
            f"{path} is truncated or not CIFAR-100's binary layout ({data.size} bytes is not a "
            f"whole number of {RECORD}-byte records)"
        )
    records = data.reshape(-1, RECORD)
    if int(records[:, 0].max()) >= coarse_names or int(records[:, 1].max()) >= fine_names:
        raise FolderDataError(f"{path} holds a label beyond the archive's label names")
    return records


def load_cifar(name: str, folder: str | Path) -> ImageClasses:
    """``cifar-fs`` or ``fc100`` from the binary archive in ``folder``: RGB 32x32, every
    class's 600 images (train file, then test file, in file order)."""
    if name not in SETS:
        raise FolderDataError(f"unknown CIFAR-100 set {name!r} (sets: {', '.join(SETS)})")
    root = _archive(Path(folder).expanduser())
    fine = _names(root / "fine_label_names.txt", 100)
    coarse = _names(root / "coarse_label_names.txt", 20)
    records = np.concatenate([_records(root / f, len(fine), len(coarse)) for f in FILES[:2]])
    lists = class_lists(name)
    known = fine if SETS[name] == "fine" else coarse
    unknown = [n for part in lists.values() for n in part if n not in known]
    if unknown:
        raise FolderDataError(
            f"{root}: its label names lack {', '.join(unknown[:3])} that {name}'s class list names"
        )
    classes, parts, blocks = [], [], []
    for part in SPLIT_PARTS:
        for listed in lists[part]:
            if SETS[name] == "fine":
                members = [fine.index(listed)]
            else:  # every fine class of the superclass, in fine-label order
                label = coarse.index(listed)
                members = sorted(set(records[records[:, 0] == label, 1].tolist()))
            for label in members:
                rows = records[records[:, 1] == label, 2:]
                if not len(rows):
                    raise FolderDataError(f"{root}: class {fine[label]!r} has no images")
                classes.append(fine[label])
                parts.append(part)
                blocks.append(rows.reshape(-1, 3, 32, 32))
    images = np.ascontiguousarray(np.concatenate(blocks))
    counts = tuple(len(b) for b in blocks)
    names = tuple(classes)
    return ImageClasses(
        images=images,
        classes=names,
        counts=counts,
        parts=tuple(parts),
        content_sha256=images_sha256(images, names, counts),
        cache_path=root,
    )
