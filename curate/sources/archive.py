"""Safe extraction of zip and tar archives.

Every member is checked before anything is written (tar members also by tarfile's data filter): no
absolute paths or `..` (zip-slip), no links or devices, sane counts and sizes (declared and actual), no
zip bombs, enough free disk. Members are written to a temporary name and renamed when complete, so an
interrupted extract resumes member by member; a corrupt archive leaves nothing behind.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from curate.core.errors import InputError
from curate.core.tree import prune_empty_dirs
from curate.engine.executor import progress_bar

MAX_TOTAL_BYTES = 64 << 30  # 64 GiB uncompressed
MAX_MEMBER_BYTES = 4 << 30
MAX_MEMBERS = 2_000_000
MAX_RATIO = 200  # uncompressed / compressed, for members over 1 MiB
COMPLETE = ".curate-extract.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    name: str  # safe relative POSIX path
    size: int
    compressed: int
    ref: object  # ZipInfo or TarInfo


@dataclass
class ExtractResult:
    dest: Path
    files: int
    bytes: int
    resumed: int  # members already present from an interrupted run
    skipped: bool = False  # the whole archive was extracted before


def is_archive(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and (zipfile.is_zipfile(p) or _is_tar(p))


def _is_tar(p: Path) -> bool:
    try:
        return tarfile.is_tarfile(p)
    except OSError:
        return False


def safe_name(raw: str, archive: Path) -> str | None:
    """A member name as a safe relative path; None for directory entries; InputError if it escapes."""
    name = raw.replace("\\", "/")
    if name.endswith("/"):
        return None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InputError(f"{archive} holds an absolute path '{raw}'", "refusing to extract it (zip-slip)")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InputError(f"{archive} holds a path escaping the target: '{raw}'", "refusing to extract it (zip-slip)")
    if any("\x00" in p for p in parts):
        raise InputError(f"{archive} holds a member name with a NUL byte", "the archive is damaged")
    return "/".join(parts)


@contextmanager
def _open(archive: Path) -> Iterator[tuple[str, object]]:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                yield "zip", z
            return
        if _is_tar(archive):
            with tarfile.open(archive) as t:
                yield "tar", t
            return
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise InputError(f"{archive} is a corrupt archive: {e}", "download it again") from e
    raise InputError(f"{archive} is not a zip or tar archive", "pass a .zip, .tar or .tar.gz file, or a folder")


def list_members(archive: str | Path, *, max_total: int = MAX_TOTAL_BYTES, max_member: int = MAX_MEMBER_BYTES,
                 max_members: int = MAX_MEMBERS, max_ratio: float = MAX_RATIO) -> list[Member]:
    """Check every member of an archive and list the files to extract. Raises InputError on anything unsafe."""
    archive = Path(archive)
    with _open(archive) as (kind, a):
        try:
            members = _zip_members(archive, a) if kind == "zip" else _tar_members(archive, a)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
            raise InputError(f"{archive} is a corrupt archive: {e}", "download it again") from e
    if len(members) > max_members:
        raise InputError(f"{archive} has {len(members):,} files, over the limit of {max_members:,}", "extract it yourself and pass the folder")
    seen: set[str] = set()
    total = 0
    for m in members:
        key = m.name.lower()
        if key in seen:
            raise InputError(f"{archive} holds '{m.name}' twice (names differing only in case count)", "the archive is ambiguous")
        seen.add(key)
        if m.size > max_member:
            raise InputError(f"{archive}: '{m.name}' is {m.size:,} bytes, over the {max_member:,}-byte limit", "extract it yourself and pass the folder")
        if m.size > (1 << 20) and m.compressed and m.size / m.compressed > max_ratio:
            raise InputError(f"{archive}: '{m.name}' expands {m.size / m.compressed:.0f}x (zip bomb?)", "refusing to extract it")
        total += m.size
    if total > max_total:
        raise InputError(f"{archive} expands to {total:,} bytes, over the {max_total:,}-byte limit", "extract it yourself and pass the folder")
    return members


def _zip_members(archive: Path, z: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in z.infolist():
        ftype = stat.S_IFMT((info.external_attr >> 16) & 0xFFFF)
        if ftype == stat.S_IFLNK:
            raise InputError(f"{archive} holds a symbolic link '{info.filename}'", "refusing to extract links")
        if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
            raise InputError(f"{archive} holds a special file '{info.filename}'", "refusing to extract it")
        if info.flag_bits & 0x1:
            raise InputError(f"{archive} is encrypted ('{info.filename}')", "decrypt it and pass the folder")
        name = safe_name(info.filename, archive)
        if name is None or info.is_dir():
            continue
        out.append(Member(name, info.file_size, info.compress_size, info))
    return out


def _tar_members(archive: Path, t: tarfile.TarFile) -> list[Member]:
    out = []
    for info in t.getmembers():
        if info.issym() or info.islnk():  # the data filter allows links inside the target; curate extracts none
            raise InputError(f"{archive} holds a link '{info.name}'", "refusing to extract links")
        _data_filter(info, archive)
        if info.isdir():
            safe_name(info.name + "/", archive)
            continue
        name = safe_name(info.name, archive)  # the filter strips a leading '/'; curate refuses absolute names
        if name is not None:
            out.append(Member(name, info.size, 0, info))
    return out


# tarfile's own member check (Python 3.10.12+, 3.11.4+): devices, FIFOs and names outside the target. The
# target is a stand-in: members are streamed by hand (resume, byte counts), not by extractall, and
# safe_extract checks the real folders. Sizes, counts, bombs, zip and links stay curate's own checks.
FILTER_ROOT = os.path.join(os.sep, "curate-extract-target")


def _data_filter(info: tarfile.TarInfo, archive: Path) -> None:
    """tarfile.data_filter's verdict on one member (not a link), in curate's words."""
    special = not (info.isfile() or info.isdir())
    check = getattr(tarfile, "data_filter", None)
    if check is None and special:  # an older Python without the filter: the same verdict on types
        raise InputError(f"{archive} holds a special file '{info.name}'", "refusing to extract it")
    try:
        if check is not None:
            check(info, FILTER_ROOT)
    except tarfile.FilterError as e:  # SpecialFileError, OutsideDestinationError, AbsolutePathError
        if special:
            raise InputError(f"{archive} holds a special file '{info.name}'", "refusing to extract it") from e
        raise InputError(f"{archive} holds a path escaping the target: '{info.name}'",
                         "refusing to extract it (zip-slip)") from e


def _fingerprint(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": str(archive.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def safe_extract(archive: str | Path, dest: str | Path, *, quiet: bool = False, **limits) -> ExtractResult:
    """Extract `archive` into `dest` safely (see module doc). A finished extract is not redone."""
    archive, dest = Path(archive), Path(dest)
    marker = dest / COMPLETE
    fp = _fingerprint(archive)
    if marker.exists():
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            done = {}
        if done.get("fingerprint") == fp:
            return ExtractResult(dest, done.get("files", 0), done.get("bytes", 0), 0, skipped=True)
    members = list_members(archive, **limits)
    total = sum(m.size for m in members)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    free = shutil.disk_usage(root).free
    if total > free:
        _cleanup(dest, created)
        raise InputError(f"{archive} needs {total:,} bytes but {root} has {free:,} free", "free some disk space")
    resumed = 0
    try:
        with _open(archive) as (kind, a), progress_bar(quiet) as bar:
            task = bar.add_task("extracting", total=total, unit="bytes")
            parents: dict[str, Path] = {}  # each folder resolved once (a link planted in dest cannot redirect)
            for m in members:
                folder, _, fname = m.name.rpartition("/")
                if folder not in parents:
                    real = (root / folder).resolve()
                    if real != root and root not in real.parents:
                        raise InputError(f"{archive}: '{m.name}' resolves outside {root}", "refusing to extract it")
                    parents[folder] = real
                target = parents[folder] / fname
                if target.is_file() and not target.is_symlink() and target.stat().st_size == m.size:
                    resumed += 1  # finished by an earlier, interrupted run
                else:
                    _extract_one(a, kind, m, target, archive)
                bar.advance(task, m.size)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, InputError) as e:
        _cleanup(dest, created, members)
        if isinstance(e, InputError):
            raise
        raise InputError(f"{archive} is a corrupt archive: {e}", "download it again") from e
    except BaseException:
        _cleanup(dest, created=False)  # interrupted: keep finished members so a re-run resumes
        raise
    marker.write_text(json.dumps({"fingerprint": fp, "files": len(members), "bytes": total}), encoding="utf-8")
    return ExtractResult(dest, len(members), total, resumed)


def _extract_one(a, kind: str, m: Member, target: Path, archive: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise InputError(f"{target} exists and is not a regular file", "remove it and re-run")
    tmp = target.with_name(f".{target.name}.part")
    src = a.open(m.ref) if kind == "zip" else a.extractfile(m.ref)
    if src is None:
        raise InputError(f"{archive}: cannot read '{m.name}'", "the archive is damaged")
    written = 0
    try:
        with src, open(tmp, "wb") as f:
            while block := src.read(_CHUNK):
                written += len(block)
                if written > m.size:
                    raise InputError(f"{archive}: '{m.name}' holds more bytes than it declares", "refusing to extract it")
                f.write(block)
        if written != m.size:
            raise InputError(f"{archive}: '{m.name}' is truncated ({written:,} of {m.size:,} bytes)", "download it again")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _cleanup(dest: Path, created: bool, members: list[Member] | None = None) -> None:
    """Remove temporary parts; given `members` (a failed extract), also every file of this archive."""
    if not dest.exists():
        return
    if members is not None and created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for part in dest.rglob(".*.part"):
        part.unlink(missing_ok=True)
    if members is not None:  # dest existed before: remove only what this archive put there
        (dest / COMPLETE).unlink(missing_ok=True)
        for m in members:
            (dest / m.name).unlink(missing_ok=True)
        prune_empty_dirs([(dest / m.name).parent for m in members], dest)
