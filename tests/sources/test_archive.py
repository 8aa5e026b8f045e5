"""Safe extraction: zip-slip, links, bombs, corrupt archives, resume."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_kaggle_data import jpeg

from curate.core.errors import InputError
from curate.sources.archive import COMPLETE, is_archive, list_members, safe_extract
from curate.sources.samples import load_photo


@pytest.fixture(scope="module")
def photo_bytes() -> dict[str, bytes]:
    return {f"set/a/{n}.jpg": jpeg(load_photo(n)[::4, ::4]) for n in ("chelsea", "coffee", "astronaut")}


def _zip(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_extracts_zip_bytes_unchanged_and_resumes(tmp_path, photo_bytes):
    arc = _zip(tmp_path / "a.zip", photo_bytes)
    assert is_archive(arc)
    res = safe_extract(arc, tmp_path / "x", quiet=True)
    assert res.files == 3 and not res.skipped
    for name, data in photo_bytes.items():
        assert (tmp_path / "x" / name).read_bytes() == data
    assert safe_extract(arc, tmp_path / "x", quiet=True).skipped
    # an interrupted run: marker gone, one member missing, a stale part left behind
    (tmp_path / "x" / COMPLETE).unlink()
    (tmp_path / "x" / "set/a/coffee.jpg").unlink()
    (tmp_path / "x" / "set/a/.coffee.jpg.part").write_bytes(b"half")
    res = safe_extract(arc, tmp_path / "x", quiet=True)
    assert res.resumed == 2 and (tmp_path / "x/set/a/coffee.jpg").read_bytes() == photo_bytes["set/a/coffee.jpg"]
    assert not list((tmp_path / "x").rglob("*.part"))


def test_extracts_tar(tmp_path, photo_bytes):
    arc = tmp_path / "a.tar.gz"
    with tarfile.open(arc, "w:gz") as t:
        for name, data in photo_bytes.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    res = safe_extract(arc, tmp_path / "x", quiet=True)
    assert res.files == 3
    assert (tmp_path / "x/set/a/chelsea.jpg").read_bytes() == photo_bytes["set/a/chelsea.jpg"]


def test_symlinks_rejected(tmp_path, photo_bytes):
    arc = _zip(tmp_path / "a.zip", photo_bytes, links={"set/a/link.jpg": "/etc/passwd"})
    with pytest.raises(InputError, match="symbolic link"):
        safe_extract(arc, tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()
    tar = tmp_path / "l.tar"
    with tarfile.open(tar, "w") as t:
        info = tarfile.TarInfo("set/link.jpg")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../outside"
        t.addfile(info)
    with pytest.raises(InputError, match="link"):
        safe_extract(tar, tmp_path / "y", quiet=True)
    assert not (tmp_path / "y").exists()


def test_corrupt_archives_rejected_and_cleaned(tmp_path, photo_bytes):
    arc = _zip(tmp_path / "a.zip", photo_bytes)
    data = arc.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        safe_extract(cut, tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()
    # flip bytes inside the last member's compressed data: the CRC check fails mid-extract
    with zipfile.ZipFile(arc) as z:
        info = z.infolist()[-1]
    bad = bytearray(data)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 10, start + 60):
        bad[i] ^= 0xFF
    crc = tmp_path / "crc.zip"
    crc.write_bytes(bytes(bad))
    with pytest.raises(InputError, match="corrupt|truncated"):
        safe_extract(crc, tmp_path / "y", quiet=True)
    assert not (tmp_path / "y").exists()  # the partial extract is gone
    not_archive = tmp_path / "n.zip"
    not_archive.write_bytes(b"hello")
    with pytest.raises(InputError, match="not a zip or tar"):
        safe_extract(not_archive, tmp_path / "z", quiet=True)


def test_limits(tmp_path, photo_bytes):
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(4 << 20)})
    with pytest.raises(InputError, match="zip bomb"):
        safe_extract(bomb, tmp_path / "x", quiet=True)
    arc = _zip(tmp_path / "a.zip", photo_bytes)
    with pytest.raises(InputError, match="limit"):
        list_members(arc, max_total=1000)
    with pytest.raises(InputError, match="limit"):
        list_members(arc, max_members=2)
    dup = _zip(tmp_path / "d.zip", {"a/X.jpg": b"1", "a/x.jpg": b"2"})
    with pytest.raises(InputError, match="twice"):
        list_members(dup)
    assert not (tmp_path / "x").exists()


def test_link_planted_in_target_is_not_followed(tmp_path, photo_bytes):
    arc = _zip(tmp_path / "a.zip", photo_bytes)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "x"
    (dest / "set").mkdir(parents=True)
    (dest / "set" / "a").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="outside"):
        safe_extract(arc, dest, quiet=True)
    assert list(outside.iterdir()) == []


def _tar(path: Path, files: dict[str, bytes], special: dict[str, bytes] | None = None) -> Path:
    """A tar of regular files, plus members of the given tar types (`special`: name -> type)."""
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, kind in (special or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            t.addfile(info)
    return path


@pytest.mark.parametrize("kind, evil", [
    *[("zip", e) for e in ("../evil.jpg", "ok/../../evil.jpg", "/tmp/evil.jpg", "..\\evil.jpg", "C:/evil.jpg")],
    *[("tar", e) for e in ("../evil.jpg", "ok/../../evil.jpg", "/tmp/evil.jpg", "ok/../evil.jpg")],
])
def test_archive_slip_rejected_nothing_written(tmp_path, photo_bytes, kind, evil):
    make = _zip if kind == "zip" else _tar
    arc = make(tmp_path / f"a.{kind}", {**photo_bytes, evil: b"x"})
    before = _listing(tmp_path)
    with pytest.raises(InputError, match="zip-slip"):
        safe_extract(arc, tmp_path / "dest" / "x", quiet=True)
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_devices_and_fifos_rejected(tmp_path, photo_bytes, kind):
    arc = _tar(tmp_path / "a.tar", photo_bytes, {"set/a/dev": kind})
    with pytest.raises(InputError, match="special file 'set/a/dev'"):
        safe_extract(arc, tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()
    arc = _tar(tmp_path / "b.tar", photo_bytes, {"../dev": kind})  # the type is named first, as before
    with pytest.raises(InputError, match="special file '../dev'"):
        safe_extract(arc, tmp_path / "y", quiet=True)


def test_tar_hard_links_and_escaping_folders_rejected(tmp_path, photo_bytes):
    arc = _tar(tmp_path / "a.tar", photo_bytes, {"set/a/hard.jpg": tarfile.LNKTYPE})
    with pytest.raises(InputError, match="holds a link 'set/a/hard.jpg'"):
        safe_extract(arc, tmp_path / "x", quiet=True)
    arc = _tar(tmp_path / "b.tar", photo_bytes, {"../up": tarfile.DIRTYPE})
    with pytest.raises(InputError, match="escaping the target: '../up'"):
        safe_extract(arc, tmp_path / "y", quiet=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
