"""Omniglot: locating, verifying by content, the cache and its failure modes.

The real data goes through the session fixture ``omniglot`` (built once); everything that
needs a source of its own uses a tiny fake copy, with ``EXPECTED`` shrunk to match it.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from raybench.data import (
    DataContentError,
    DataNotFoundError,
    OmniglotImages,
    cache_dir,
    check_omniglot,
    load_omniglot,
)
from raybench.data import omniglot as om
from raybench.errors import RaybenchError

# A fake copy: alphabet -> number of characters, per split. Names chosen so that the global
# sort interleaves the two splits (Beta is evaluation, between two background alphabets).
FAKE = {
    "images_background": {"Alpha": 2, "Gamma": 1},
    "images_evaluation": {"Beta": 2},
}
FAKE_ORDER = (
    "Alpha/character01",
    "Alpha/character02",
    "Beta/character01",
    "Beta/character02",
    "Gamma/character01",
)


def _png(row: int, drawing: int) -> bytes:
    """A 105x105 one-bit drawing like Omniglot's (white paper, black ink) with a block of ink
    whose place encodes the character, so the cache order can be checked pixel-wise."""
    im = Image.new("1", (105, 105), 1)
    top = 15 * row
    for y in range(top, top + 15):
        for x in range(drawing % 5, 40):
            im.putpixel((x, y), 0)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_fake(folder: Path, *, drop: str | None = None, note: str = "") -> Path:
    """Write a fake images_background.zip / images_evaluation.zip pair into ``folder``.

    ``drop`` removes one drawing from that character; ``note`` adds a non-PNG member, which
    changes the zip's size but not its content.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for split, alphabets in FAKE.items():
        with zipfile.ZipFile(folder / f"{split}.zip", "w") as zf:
            for alphabet, n in alphabets.items():
                for c in range(1, n + 1):
                    name = f"{alphabet}/character{c:02d}"
                    row = FAKE_ORDER.index(name)
                    for d in range(om.DRAWINGS):
                        if name == drop and d == 0:
                            continue
                        zf.writestr(f"{split}/{name}/{row:04d}_{d + 1:02d}.png", _png(row, d))
            if note:
                zf.writestr(f"{split}/README.txt", note)
    return folder


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Shrink the expected counts to FAKE's and isolate data and cache folders."""
    monkeypatch.setattr(
        om,
        "EXPECTED",
        {split: (len(a), sum(a.values())) for split, a in FAKE.items()},
    )
    monkeypatch.setenv("RAYBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RAYBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAYBENCH_OMNIGLOT_MIRROR", "http://127.0.0.1:9")
    (tmp_path / "data").mkdir()
    return tmp_path


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = om._build_cache

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(om, "_build_cache", counting)
    return calls


def _forbid_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("the source was read although the cache is valid")

    monkeypatch.setattr(om.zipfile, "ZipFile", boom)
    monkeypatch.setattr(om, "_build_cache", boom)


def _temp_debris(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


# ---------------------------------------------------------------------------------------------
# the real data


def test_real_counts_and_pixels(omniglot: OmniglotImages) -> None:
    x = omniglot.images
    assert x.shape == (1623, 20, 28, 28)
    assert x.dtype == torch.uint8
    assert omniglot.n_characters == len(omniglot.characters) == 1623
    assert sum(omniglot.background) == 964
    assert len(omniglot.background) - sum(omniglot.background) == 659
    assert len({c.split("/")[0] for c in omniglot.characters}) == 50
    # strokes high: mostly empty paper, and full-ink pixels exist
    assert x.float().mean().item() < 64
    assert (x == 255).any()
    assert x.max().item() == 255
    # every drawing has some ink
    assert (x.flatten(2).amax(dim=2) > 128).all()
    assert omniglot.meta["n_background"] == 964
    assert omniglot.meta["format_version"] == om.FORMAT_VERSION


def test_real_character_names_sorted_unique(omniglot: OmniglotImages) -> None:
    names = omniglot.characters
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)
    assert all(len(n.split("/")) == 2 and n.split("/")[1].startswith("character") for n in names)
    bg_alphabets = {n.split("/")[0] for n, b in zip(names, omniglot.background, strict=True) if b}
    ev_alphabets = {
        n.split("/")[0] for n, b in zip(names, omniglot.background, strict=True) if not b
    }
    assert (len(bg_alphabets), len(ev_alphabets)) == (30, 20)
    assert not bg_alphabets & ev_alphabets


def test_real_second_load_reads_only_the_cache(
    omniglot: OmniglotImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_sources(monkeypatch)
    again = load_omniglot()
    assert torch.equal(again.images, omniglot.images)
    assert again.characters == omniglot.characters
    assert again.background == omniglot.background
    assert again.source == str(Path(os.environ["RAYBENCH_DATA"]).absolute())
    assert again.cache_path == cache_dir() / "omniglot-28x28.npy"


def test_real_cache_files(omniglot: OmniglotImages) -> None:
    npy = omniglot.cache_path
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert meta["characters"] == list(omniglot.characters)
    assert meta["fingerprint"] == {
        "images_background.zip": (Path(meta["source"]) / "images_background.zip").stat().st_size,
        "images_evaluation.zip": (Path(meta["source"]) / "images_evaluation.zip").stat().st_size,
    }
    assert np.load(npy, mmap_mode="r").shape == (1623, 20, 28, 28)
    assert not _temp_debris(npy.parent)


def test_real_check(omniglot: OmniglotImages) -> None:
    report = check_omniglot()
    assert report.cache_before == "valid"
    assert report.cache_action == "used"
    assert report.n_characters == 1623 and report.n_background == 964
    assert [(s.alphabets, s.characters, s.images, s.ok) for s in report.splits] == [
        (30, 964, 19280, True),
        (20, 659, 13180, True),
    ]
    assert report.locations[-1].label == "RAYBENCH_DATA"
    json.dumps(report.as_dict())  # plain data


def test_cli_check(omniglot: OmniglotImages) -> None:
    from typer.testing import CliRunner

    from raybench.cli.data import app

    result = CliRunner().invoke(app, ["check"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "964/964" in result.output and "659/659" in result.output
    assert str(cache_dir()) in result.output


# ---------------------------------------------------------------------------------------------
# a fake copy: the cache, its fingerprint and atomic writes


def test_fake_round_trip_order_and_strokes(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake(fake_env / "data")
    first = load_omniglot()
    assert first.characters == FAKE_ORDER
    assert first.background == (True, True, False, False, True)
    assert first.images.shape == (5, 20, 28, 28)
    for row in range(5):  # the ink block of character `row` is at rows 15*row .. 15*row+14
        y = (15 * row + 7) * 28 // 105
        assert first.images[row, :, y, 5].min().item() > 200, row
        assert first.images[row, :, y, 27].max().item() < 30, row
    _forbid_sources(monkeypatch)
    second = load_omniglot()
    assert torch.equal(first.images, second.images)
    assert sorted(p.name for p in (fake_env / "cache").iterdir()) == [
        "omniglot-28x28.json",
        "omniglot-28x28.npy",
    ]


def test_changed_source_rebuilds(fake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake(fake_env / "data")
    builds = _count_builds(monkeypatch)
    load_omniglot()
    load_omniglot()
    assert len(builds) == 1
    make_fake(fake_env / "data", note="a different release")
    rebuilt = load_omniglot()
    assert len(builds) == 2
    size = (fake_env / "data" / "images_background.zip").stat().st_size
    assert rebuilt.meta["fingerprint"]["images_background.zip"] == size
    load_omniglot()
    assert len(builds) == 2


def test_same_zips_elsewhere_need_no_rebuild(
    fake_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake(fake_env / "data")
    load_omniglot()
    make_fake(fake_env / "copy" / "omniglot-py")  # torchvision's layout, same bytes
    _forbid_sources(monkeypatch)
    data = load_omniglot(fake_env / "copy")
    assert data.source == str(fake_env / "copy" / "omniglot-py")


def test_cache_alone_is_used_without_a_source(fake_env: Path) -> None:
    make_fake(fake_env / "data")
    built = load_omniglot()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RAYBENCH_DATA", str(fake_env / "nowhere"))
    try:
        cached = load_omniglot(download=False)
    finally:
        monkeypatch.undo()
    assert cached.source == "cache"
    assert torch.equal(built.images, cached.images)


def test_interrupted_write_leaves_nothing_trusted(
    fake_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake(fake_env / "data")
    load_omniglot()
    make_fake(fake_env / "data", note="changed")  # forces a rebuild...

    def killed(fh, arr, **kwargs):  # ...that dies halfway through writing the images
        fh.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(om.np, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            load_omniglot()
    cache = fake_env / "cache"
    assert not _temp_debris(cache)
    assert not (cache / "omniglot-28x28.json").exists()  # the old metadata is gone too
    builds = _count_builds(monkeypatch)
    monkeypatch.setenv("RAYBENCH_DATA", str(fake_env / "nowhere"))
    with pytest.raises(DataNotFoundError):  # no source: the orphan .npy is not trusted
        load_omniglot(download=False)
    monkeypatch.setenv("RAYBENCH_DATA", str(fake_env / "data"))
    assert load_omniglot().images.shape == (5, 20, 28, 28)
    assert len(builds) == 1


def test_extracted_folders_are_accepted(fake_env: Path) -> None:
    make_fake(fake_env / "zips")
    for split in FAKE:
        with zipfile.ZipFile(fake_env / "zips" / f"{split}.zip") as zf:
            zf.extractall(fake_env / "data")
    from_dirs = load_omniglot()
    assert from_dirs.meta["fingerprint"]["images_background/"]["files"] == 60
    from_zips = load_omniglot(fake_env / "zips")
    assert torch.equal(from_dirs.images, from_zips.images)


# ---------------------------------------------------------------------------------------------
# what the user sees when something is wrong


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert isinstance(exc.value, RaybenchError)
    return message


def test_wrong_counts_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake(tmp_path / "data")  # real EXPECTED: far too few alphabets
    monkeypatch.setenv("RAYBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataContentError) as exc:
        load_omniglot(tmp_path / "data")
    message = _one_line(exc)
    assert str(tmp_path / "data" / "images_background.zip") in message
    assert "expected 30 alphabets / 964 characters" in message
    assert "found 2 alphabets / 3 characters / 60 images" in message


def test_missing_drawing_is_reported(fake_env: Path) -> None:
    make_fake(fake_env / "data", drop="Beta/character02")
    with pytest.raises(DataContentError) as exc:
        load_omniglot()
    message = _one_line(exc)
    assert "images_evaluation.zip" in message
    assert "Beta/character02 (19)" in message


def test_truncated_zip_is_reported(fake_env: Path) -> None:
    make_fake(fake_env / "data")
    zip_path = fake_env / "data" / "images_evaluation.zip"
    zip_path.write_bytes(zip_path.read_bytes()[:3000])
    with pytest.raises(DataContentError) as exc:
        load_omniglot()
    message = _one_line(exc)
    assert str(zip_path) in message and "not a readable zip" in message


def test_half_a_copy_is_reported(fake_env: Path) -> None:
    make_fake(fake_env / "data")
    (fake_env / "data" / "images_evaluation.zip").unlink()
    with pytest.raises(DataContentError) as exc:
        load_omniglot()
    assert "images_evaluation.zip is missing" in _one_line(exc)


def test_nothing_found_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("data", "cache"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("RAYBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RAYBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAYBENCH_OMNIGLOT_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(DataNotFoundError) as exc:
        load_omniglot()
    message = _one_line(exc)
    assert "--data-dir (not given)" in message
    assert f"RAYBENCH_DATA={tmp_path / 'data'} (no Omniglot there)" in message
    assert "http://127.0.0.1:9/images_background.zip failed" in message
    assert "--data-dir DIR or RAYBENCH_DATA=DIR" in message
    assert not list((tmp_path / "cache").iterdir())  # no partial download left behind

    with pytest.raises(DataNotFoundError) as exc:
        load_omniglot(download=False)
    assert "download disabled" in _one_line(exc)


def test_cache_folder_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAYBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "raybench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "raybench"


# ---------------------------------------------------------------------------------------------
# downloading, from a local mirror


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server standing in for the official download site."""
    make_fake(tmp_path / "served")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_checks_md5_and_uses_torchvision_layout(
    fake_env: Path, mirror: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = fake_env / "served"
    monkeypatch.setenv("RAYBENCH_OMNIGLOT_MIRROR", mirror)
    monkeypatch.setattr(om, "ZIP_MD5", {s: _md5(served / f"{s}.zip") for s in FAKE})
    data = load_omniglot()
    assert data.source == str(fake_env / "cache" / "omniglot-py")
    assert data.characters == FAKE_ORDER
    assert not _temp_debris(fake_env / "cache")


def test_download_with_wrong_md5_is_refused(
    fake_env: Path, mirror: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYBENCH_OMNIGLOT_MIRROR", mirror)
    with pytest.raises(DataNotFoundError) as exc:
        load_omniglot()  # official MD5s: the fake zips do not match
    assert "failed: File not found or corrupted" in _one_line(exc)
    assert not list((fake_env / "cache").iterdir())


# ---------------------------------------------------------------------------------------------
# integrity: the cache by its content hash, a damaged image in a zip


def _flip_a_pixel(npy: Path) -> None:
    data = bytearray(npy.read_bytes())
    data[-3] ^= 0xFF  # a pixel byte of the last drawing; the size stays the same
    npy.write_bytes(bytes(data))


def test_a_cache_with_flipped_bytes_is_rebuilt_not_used(
    fake_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake(fake_env / "data")
    original = load_omniglot()
    npy = original.cache_path
    _flip_a_pixel(npy)
    builds = _count_builds(monkeypatch)
    again = load_omniglot()
    assert len(builds) == 1  # the hash did not match: decoded again from the zips
    assert torch.equal(again.images, original.images)
    _flip_a_pixel(npy)
    monkeypatch.setenv("RAYBENCH_DATA", str(fake_env / "nowhere"))
    with pytest.raises(DataNotFoundError, match="no valid preprocessed cache"):
        load_omniglot(download=False)  # without a source, a changed cache is not used


def test_check_says_what_it_verified(fake_env: Path) -> None:
    make_fake(fake_env / "data")
    npy = load_omniglot().cache_path
    _flip_a_pixel(npy)
    report = check_omniglot()
    assert "SHA-256" in report.cache_before and report.cache_action == "built"
    assert any("table of contents" in line for line in report.verified)
    assert any("SHA-256" in line for line in report.verified)
    npy.write_bytes(b"\0" * npy.stat().st_size)  # same size, not an array at all
    report = check_omniglot()
    assert report.cache_before.startswith("unreadable image file"), report.cache_before


def test_a_damaged_compressed_image_is_one_line(fake_env: Path) -> None:
    """A deflated member whose compressed bytes are damaged: zlib fails while decoding."""
    make_fake(fake_env / "data")
    zip_path = fake_env / "data" / "images_evaluation.zip"
    with zipfile.ZipFile(zip_path) as src:
        members = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in members:
            dst.writestr(name, data)
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.infolist()[3]
    raw = bytearray(zip_path.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start : start + 4] = b"\xff\xff\xff\xff"  # a deflate block of the reserved type
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(DataContentError) as exc:
        load_omniglot()
    message = _one_line(exc)
    assert str(zip_path) in message and info.filename in message and "damaged" in message
