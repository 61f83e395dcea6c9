"""Find, verify and preprocess Omniglot into a small cache that loads in milliseconds.

Decoding 32,460 PNGs takes seconds; a benchmark loads the data many times, so the images are
decoded once into one uint8 array (``omniglot-28x28.npy``) with a JSON sidecar
(``omniglot-28x28.json``) and every later load reads only those two files. The sidecar
records the SHA-256 of the pixels; every load checks it (one hash of ~40 MB), so a cache
whose bytes changed is rebuilt from the source (or refused without one), never used.

A local copy is accepted by its *content* (alphabet, character and drawing counts, read from
the zip's table of contents), not by checksum: repackaged zips with identical pixels are
common and their MD5 differs from the official one. The MD5 check is kept for what raybench
downloads itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from raybench.errors import RaybenchError

FORMAT_VERSION = 2  # 2: the sidecar records the pixels' SHA-256 (images_sha256)
IMAGE_SIZE = 28
DRAWINGS = 20
SPLITS = ("images_background", "images_evaluation")
#: split -> (alphabets, characters) of the official release. A module global on purpose: tests
#: shrink it to run the whole pipeline on a tiny fake copy.
EXPECTED: dict[str, tuple[int, int]] = {
    "images_background": (30, 964),
    "images_evaluation": (20, 659),
}
ZIP_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
DEFAULT_MIRROR = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
TORCHVISION_FOLDER = "omniglot-py"
CACHE_STEM = f"omniglot-{IMAGE_SIZE}x{IMAGE_SIZE}"
ENV_DATA = "RAYBENCH_DATA"
ENV_CACHE = "RAYBENCH_CACHE"
ENV_MIRROR = "RAYBENCH_OMNIGLOT_MIRROR"
DOWNLOAD_TIMEOUT_S = 60.0
HINT = (
    "Point raybench at a local copy with --data-dir DIR or RAYBENCH_DATA=DIR "
    "(a folder holding images_background.zip and images_evaluation.zip)."
)


class DataNotFoundError(RaybenchError):
    """No Omniglot copy, no usable cache, and no download: the user must say where the data is."""


class DataContentError(RaybenchError):
    """A copy was found but is not the full Omniglot (missing characters, a truncated zip...)."""


@dataclass(frozen=True, eq=False, repr=False)  # eq=False: tensors have no boolean ==
class OmniglotImages:
    """The whole data set in memory: indexing is by character, then drawing."""

    images: torch.Tensor  # uint8 (characters, 20, 28, 28), strokes 255, background 0
    characters: tuple[str, ...]  # "Alphabet/characterNN", in cache order (sorted)
    background: tuple[bool, ...]  # True for characters of images_background
    source: str  # folder the zips were found in, or "cache" when only the cache was available
    cache_path: Path  # the .npy file; its metadata sits next to it with a .json suffix
    meta: dict[str, Any]

    @property
    def n_characters(self) -> int:
        return len(self.characters)

    def __repr__(self) -> str:  # the default one prints 1623 names and a tensor
        return (
            f"OmniglotImages({self.n_characters} characters, {sum(self.background)} background, "
            f"images {self.images.dtype} {tuple(self.images.shape)}, source={self.source!r}, "
            f"cache_path={str(self.cache_path)!r})"
        )


# ---------------------------------------------------------------------------------------------
# where to look


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _show(path: Path) -> str:
    """Paths in messages: absolute, with the home folder as ``~`` to keep the line short."""
    home = Path.home()
    with contextlib.suppress(ValueError):
        return "~/" + path.relative_to(home).as_posix()
    return str(path)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().absolute() if value else None


def cache_dir() -> Path:
    """The per-user folder for downloads and the preprocessed cache."""
    explicit = _env_path(ENV_CACHE)
    if explicit is not None:
        return explicit
    xdg = _env_path("XDG_CACHE_HOME")
    return (xdg if xdg is not None else Path.home() / ".cache") / "raybench"


def _mirror() -> str:
    return (os.environ.get(ENV_MIRROR, "").strip() or DEFAULT_MIRROR).rstrip("/")


@dataclass(frozen=True)
class _Part:
    """One half of the data set at one place: a zip, or its extracted folder."""

    split: str
    path: Path

    @property
    def is_zip(self) -> bool:
        return self.path.suffix == ".zip"

    @property
    def name(self) -> str:
        return self.path.name if self.is_zip else self.path.name + "/"


@dataclass(frozen=True)
class _Source:
    root: Path
    parts: tuple[_Part, ...]  # one per split, in SPLITS order


@dataclass(frozen=True)
class Location:
    """One place raybench looked at, and what it held."""

    label: str  # "--data-dir", "RAYBENCH_DATA" or "cache"
    path: Path | None
    found: str  # human words: "not given", "no Omniglot there", "images_background.zip, ..."

    def describe(self) -> str:
        if self.label == "cache":
            name = f"RAYBENCH_CACHE={self.path}" if _env_path(ENV_CACHE) else _show(self.path)
            return f"{name} ({self.found})"
        if self.path is None:
            return f"{self.label} ({self.found})"
        sep = "=" if self.label == ENV_DATA else " "
        return f"{self.label}{sep}{self.path} ({self.found})"


def _find_parts(folder: Path) -> tuple[Path, dict[str, _Part]]:
    """The best of ``folder`` and ``folder/omniglot-py``: zips first, then extracted folders."""
    best: tuple[Path, dict[str, _Part]] = (folder, {})
    for root in (folder, folder / TORCHVISION_FOLDER):
        parts: dict[str, _Part] = {}
        for split in SPLITS:
            if (root / f"{split}.zip").is_file():
                parts[split] = _Part(split, root / f"{split}.zip")
            elif (root / split).is_dir():
                parts[split] = _Part(split, root / split)
        if len(parts) > len(best[1]):
            best = (root, parts)
    return best


def _probe(label: str, folder: Path | None, missing: str) -> tuple[Location, dict[str, _Part]]:
    if folder is None:
        return Location(label, None, missing), {}
    if not folder.is_dir():
        return Location(label, folder, "does not exist"), {}
    root, parts = _find_parts(folder)
    if not parts:
        return Location(label, folder, "no Omniglot there"), {}
    names = ", ".join(p.name for p in parts.values())
    where = "" if root == folder else f" in {TORCHVISION_FOLDER}/"
    only = "only " if len(parts) < len(SPLITS) else ""
    return Location(label, folder, only + names + where), parts


def _locate(data_dir: str | Path | None) -> tuple[list[Location], _Source | None]:
    """Look in --data-dir, then RAYBENCH_DATA, then the cache folder; first complete copy wins.

    A user-named folder holding only one of the two halves is an error rather than a reason to
    fall through: silently using other data than the user pointed at would be worse.
    """
    explicit = Path(data_dir).expanduser().absolute() if data_dir is not None else None
    candidates = [
        ("--data-dir", explicit, "not given"),
        (ENV_DATA, _env_path(ENV_DATA), "not set"),
        ("cache", cache_dir(), ""),
    ]
    locations: list[Location] = []
    for label, folder, missing in candidates:
        location, parts = _probe(label, folder, missing)
        locations.append(location)
        if len(parts) == len(SPLITS):
            root = next(iter(parts.values())).path.parent
            return locations, _Source(root, tuple(parts[s] for s in SPLITS))
        if parts and label != "cache":
            absent = " and ".join(f"{s}.zip" for s in SPLITS if s not in parts)
            raise DataContentError(
                f"{location.describe()}: {absent} is missing; "
                "both images_background.zip and images_evaluation.zip are needed"
            )
    return locations, None


# ---------------------------------------------------------------------------------------------
# reading and verifying a copy


class _Reader:
    """A zip or an extracted folder, seen the same way: member names and their bytes."""

    def __init__(self, part: _Part) -> None:
        self.part = part
        self._zip: zipfile.ZipFile | None = None
        if part.is_zip:
            try:
                self._zip = zipfile.ZipFile(part.path)
                self.names = self._zip.namelist()
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataContentError(
                    f"{part.path} is not a readable zip ({_one_line(exc)}); "
                    "a truncated or corrupt copy? Replace it with a fresh one"
                ) from None
        else:
            root = part.path.parent
            self.names = [
                (Path(d) / f).relative_to(root).as_posix()
                for d, _, files in os.walk(part.path)
                for f in files
            ]

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.part.path.parent / name).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _characters_of(part: _Part, names: list[str]) -> dict[str, list[str]]:
    """ "Alphabet/characterNN" -> its PNG members, from member names only (no decoding)."""
    chars: dict[str, list[str]] = {}
    for name in names:
        bits = name.split("/")
        if (
            len(bits) == 4
            and bits[0] == part.split
            and bits[3].lower().endswith(".png")
            and not any(b.startswith(".") for b in bits)
        ):
            chars.setdefault(f"{bits[1]}/{bits[2]}", []).append(name)
    for members in chars.values():
        members.sort()
    return dict(sorted(chars.items()))


@dataclass(frozen=True)
class SplitCounts:
    """What one zip (or folder) holds, against what the official release holds."""

    file: str
    alphabets: int
    characters: int
    images: int
    expected_alphabets: int
    expected_characters: int
    uneven: tuple[str, ...]  # characters without exactly DRAWINGS drawings, "name (n)"

    @property
    def ok(self) -> bool:
        return (
            self.alphabets == self.expected_alphabets
            and self.characters == self.expected_characters
            and not self.uneven
        )

    def problem(self) -> str:
        expected = (
            f"expected {self.expected_alphabets} alphabets / {self.expected_characters} "
            f"characters / {self.expected_characters * DRAWINGS} images ({DRAWINGS} drawings "
            f"each), found {self.alphabets} alphabets / {self.characters} characters / "
            f"{self.images} images"
        )
        if self.uneven:
            shown = ", ".join(self.uneven[:3]) + (", ..." if len(self.uneven) > 3 else "")
            expected += f"; {len(self.uneven)} characters without {DRAWINGS} drawings: {shown}"
        return f"{self.file}: {expected}"


def _count(part: _Part, chars: dict[str, list[str]]) -> SplitCounts:
    n_alpha, n_char = EXPECTED[part.split]
    return SplitCounts(
        file=str(part.path),
        alphabets=len({c.split("/")[0] for c in chars}),
        characters=len(chars),
        images=sum(len(m) for m in chars.values()),
        expected_alphabets=n_alpha,
        expected_characters=n_char,
        uneven=tuple(f"{c} ({len(m)})" for c, m in chars.items() if len(m) != DRAWINGS),
    )


def _fingerprint(source: _Source) -> dict[str, Any]:
    """Cheap (stat only for zips) identity of a copy, to notice a replaced source.

    The folder is deliberately left out: the same zips seen from another path are the same
    data and need no rebuild.
    """
    prints: dict[str, Any] = {}
    for part in source.parts:
        if part.is_zip:
            prints[part.name] = part.path.stat().st_size
        else:
            names = sorted(_Reader(part).names)
            digest = hashlib.sha1("\n".join(names).encode()).hexdigest()
            prints[part.name] = {"files": len(names), "names_sha1": digest}
    return prints


# ---------------------------------------------------------------------------------------------
# the cache


def _cache_files(folder: Path) -> tuple[Path, Path]:
    return folder / f"{CACHE_STEM}.npy", folder / f"{CACHE_STEM}.json"


@contextlib.contextmanager
def _atomic_write(path: Path) -> Iterator[io.BufferedWriter]:
    """Write to a hidden temporary file next to ``path``, then rename: all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class _Cached:
    images: np.ndarray | None
    meta: dict[str, Any]
    problem: str  # "" when the cache is usable


def _expected_shape() -> tuple[int, int, int, int]:
    return (sum(c for _, c in EXPECTED.values()), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)


def _read_meta(folder: Path) -> tuple[dict[str, Any], str]:
    npy, meta_path = _cache_files(folder)
    if not meta_path.is_file():
        return {}, "missing"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        return {}, f"unreadable metadata ({_one_line(exc)})"
    shape = list(_expected_shape())
    checks = [
        (isinstance(meta, dict), "metadata is not an object"),
        (meta.get("format_version") == FORMAT_VERSION, "other format version"),
        (meta.get("image_size") == IMAGE_SIZE, "other image size"),
        (meta.get("shape") == shape, f"shape is not {shape}"),
        (len(meta.get("characters", ())) == shape[0], "character list does not match"),
        (len(meta.get("background", ())) == shape[0], "background flags do not match"),
        (npy.is_file() and npy.stat().st_size == meta.get("images_bytes"), "image file changed"),
    ]
    for ok, problem in checks:
        if not ok:
            return {}, problem
    return meta, ""


def _pixels_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(images)).cast("B")).hexdigest()


def _read_cache(folder: Path) -> _Cached:
    """The cache if it is sound: metadata, shape and the pixels' SHA-256 all as recorded."""
    meta, problem = _read_meta(folder)
    if problem:
        return _Cached(None, {}, problem)
    try:
        images = np.load(_cache_files(folder)[0], allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return _Cached(None, {}, f"unreadable image file ({_one_line(exc)})")
    if images.dtype != np.uint8 or list(images.shape) != meta["shape"]:
        return _Cached(None, {}, "image file does not match its metadata")
    if _pixels_sha256(images) != meta.get("images_sha256"):
        return _Cached(None, {}, "image content changed (SHA-256 does not match the recorded one)")
    return _Cached(images, meta, "")


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        small = im.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return 255 - np.asarray(small, dtype=np.uint8)


def _build_cache(source: _Source, folder: Path) -> _Cached:
    """Verify the copy by its table of contents, decode every drawing once, write the cache."""
    start = time.perf_counter()
    readers = [_Reader(part) for part in source.parts]
    try:
        per_split = [_characters_of(r.part, r.names) for r in readers]
        for reader, chars in zip(readers, per_split, strict=True):
            counts = _count(reader.part, chars)
            if not counts.ok:
                raise DataContentError(counts.problem())
        owner: dict[str, str] = {}
        for reader, chars in zip(readers, per_split, strict=True):
            for alphabet in {c.split("/")[0] for c in chars}:
                if alphabet in owner:
                    raise DataContentError(
                        f"{reader.part.path}: alphabet {alphabet!r} is also in {owner[alphabet]}"
                    )
                owner[alphabet] = reader.part.name
        order = sorted(
            (name, i) for i, chars in enumerate(per_split) for name in chars
        )  # global order by "Alphabet/characterNN"
        images = np.empty(_expected_shape(), dtype=np.uint8)
        for row, (name, i) in enumerate(order):
            reader = readers[i]
            for col, member in enumerate(per_split[i][name]):
                try:
                    images[row, col] = _decode(reader.read(member))
                except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
                    raise DataContentError(
                        f"{reader.part.path}: cannot read {member} ({_one_line(exc)}); the "
                        "copy is damaged: replace it with a fresh one"
                    ) from None
    finally:
        for reader in readers:
            reader.close()

    npy, meta_path = _cache_files(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)  # from here on the old cache is never trusted
        with _atomic_write(npy) as fh:
            np.save(fh, images, allow_pickle=False)
    except OSError as exc:
        raise RaybenchError(
            f"cannot write the Omniglot cache in {folder} ({_one_line(exc)}); "
            f"set {ENV_CACHE} to a writable folder"
        ) from None
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "what": "Omniglot, 255 - LANCZOS 28x28 grayscale: strokes 255, background 0",
        "image_size": IMAGE_SIZE,
        "dtype": "uint8",
        "shape": list(images.shape),
        "n_characters": len(order),
        "n_background": sum(1 for _, i in order if i == 0),
        "n_evaluation": sum(1 for _, i in order if i == 1),
        "drawings_per_character": DRAWINGS,
        "source": str(source.root),
        "source_files": [str(p.path) for p in source.parts],
        "fingerprint": _fingerprint(source),
        "images_file": npy.name,
        "images_bytes": npy.stat().st_size,
        "images_sha256": _pixels_sha256(images),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - start, 3),
        "characters": [name for name, _ in order],
        "background": [i == 0 for _, i in order],
    }
    with _atomic_write(meta_path) as fh:
        fh.write(json.dumps(meta, indent=1).encode())
    return _Cached(images, meta, "")


# ---------------------------------------------------------------------------------------------
# download


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torchvision's urlopen has no timeout: without one a firewalled network hangs forever."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(folder: Path) -> _Source:
    """Fetch the official zips into ``folder/omniglot-py`` (torchvision's layout), MD5-checked.

    Each zip lands in a temporary folder first and is renamed into place only once its MD5
    matched, so an interrupted download never looks like a (bad) local copy.
    """
    from torchvision.datasets.utils import check_integrity, download_url  # slow import

    target = folder / TORCHVISION_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    try:
        for split in SPLITS:
            final = target / f"{split}.zip"
            if check_integrity(str(final), ZIP_MD5[split]):
                continue
            tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".download-"))
            try:
                with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                    url = f"{_mirror()}/{split}.zip"
                    download_url(url, str(tmp), f"{split}.zip", ZIP_MD5[split])
                os.replace(tmp / f"{split}.zip", final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        with contextlib.suppress(OSError):
            target.rmdir()  # only if empty: no debris after a failed first download
        raise
    return _Source(target, tuple(_Part(s, target / f"{s}.zip") for s in SPLITS))


def _not_found(locations: list[Location], why: str) -> DataNotFoundError:
    places = []
    for loc in locations:
        if loc.label == "cache":
            loc = Location(loc.label, loc.path, f"{loc.found}; {why}" if loc.found else why)
        places.append(loc.describe())
    message = f"Omniglot not found. Looked in: {'; '.join(places)}. {HINT}"
    return DataNotFoundError(_one_line(message))


# ---------------------------------------------------------------------------------------------
# public API


def _images(cached: _Cached, source: str, folder: Path) -> OmniglotImages:
    assert cached.images is not None
    return OmniglotImages(
        images=torch.from_numpy(cached.images),
        characters=tuple(cached.meta["characters"]),
        background=tuple(bool(b) for b in cached.meta["background"]),
        source=source,
        cache_path=_cache_files(folder)[0],
        meta=cached.meta,
    )


def _load(data_dir: str | Path | None, download: bool) -> tuple[OmniglotImages, str]:
    folder = cache_dir()
    locations, source = _locate(data_dir)
    if source is not None:
        cached = _read_cache(folder)
        if not cached.problem and cached.meta.get("fingerprint") == _fingerprint(source):
            return _images(cached, str(source.root), folder), "used"
        return _images(_build_cache(source, folder), str(source.root), folder), "built"
    cached = _read_cache(folder)
    if not cached.problem:
        return _images(cached, "cache", folder), "used"
    found = locations[-1].found
    locations[-1] = Location("cache", folder, f"{found}, no valid preprocessed cache")
    if not download:
        raise _not_found(locations, "download disabled")
    url = f"{_mirror()}/images_background.zip"
    try:
        source = _download(folder)
    except (OSError, RuntimeError, ValueError, http.client.HTTPException) as exc:
        raise _not_found(locations, f"download from {url} failed: {exc}") from None
    return _images(_build_cache(source, folder), str(source.root), folder), "built"


def load_omniglot(data_dir: str | Path | None = None, *, download: bool = True) -> OmniglotImages:
    """All 1623 x 20 drawings as one uint8 tensor, decoding the PNGs only the first time.

    ``data_dir`` overrides ``RAYBENCH_DATA``; with neither holding the zips, the cache folder is
    used, and the official zips are downloaded there if ``download`` allows it.
    """
    return _load(data_dir, download)[0]


@dataclass(frozen=True)
class OmniglotCheck:
    """Everything ``raybench data check`` reports, as plain data."""

    locations: tuple[Location, ...]
    source: str  # folder the zips were found in, or "cache" when only the cache was there
    splits: tuple[SplitCounts, ...]
    cache_dir: Path
    cache_before: str  # "valid", "missing", "stale (source changed)", or what is wrong
    cache_action: str  # "used" or "built"
    verified: tuple[str, ...]  # what was actually checked, in words
    n_characters: int
    n_background: int
    shape: tuple[int, ...]
    load_seconds: float  # the load that ``check`` did, building the cache if needed
    cached_load_seconds: float  # a second load, from the cache alone

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["locations"] = [
            {"label": loc.label, "path": str(loc.path) if loc.path else None, "found": loc.found}
            for loc in self.locations
        ]
        out["cache_dir"] = str(self.cache_dir)
        return out


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def check_omniglot(data_dir: str | Path | None = None) -> OmniglotCheck:
    """Say where the data was found and whether the cache is sound, building it if needed.

    Unlike ``load_omniglot`` this opens the zips even when the cache is valid, so that the
    counts it reports come from the source itself.
    """
    folder = cache_dir()
    locations, source = _locate(data_dir)
    cached = _read_cache(folder)  # the whole check a load does, pixels' hash included
    before = cached.problem
    if source is not None and not before and cached.meta.get("fingerprint") != _fingerprint(source):
        before = "stale (source changed)"
    (data, action), seconds = _timed(lambda: _load(data_dir, True))
    _, cached_seconds = _timed(lambda: _load(data_dir, False))
    if source is None:
        locations, source = _locate(data_dir)  # a download may have filled the cache folder
    splits: list[SplitCounts] = []
    for part in source.parts if source is not None else ():
        reader = _Reader(part)
        try:
            splits.append(_count(part, _characters_of(part, reader.names)))
        finally:
            reader.close()
    verified = [
        "zips: alphabet, character and drawing counts from their table of contents "
        "(names only; the pixels are checked through the cache)"
        if splits
        else "no source copy to count (the cache alone was used)",
        "cache: metadata, shape and the SHA-256 of every pixel byte, "
        + ("rebuilt from the source now" if action == "built" else "as recorded at its build"),
    ]
    if source is not None:
        verified.append("cache against its source: zip sizes (or folder listings) as recorded")
    return OmniglotCheck(
        locations=tuple(locations),
        source=data.source,
        splits=tuple(splits),
        cache_dir=folder,
        cache_before=before or "valid",
        cache_action=action,
        verified=tuple(verified),
        n_characters=data.n_characters,
        n_background=sum(data.background),
        shape=tuple(data.images.shape),
        load_seconds=seconds,
        cached_load_seconds=cached_seconds,
    )
