"""Movers: how a file moves on a local disk and on an object store.

Both take and give locations as strings (absolute local paths, or URLs) and raise `Gone` when the source is
not there, `Changed` when a copy did not verify (nothing of it is left then). curate.moves.journal uses them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from curate.core import storage
from curate.core.errors import InputError
from curate.core.tree import atomic_write_bytes, file_sha256, prune_empty_dirs


class Gone(Exception):
    """The source of a move is not there."""


class Changed(Exception):
    """The copy of a source did not have the planned sha256 (the source changed); the copy was removed."""


def sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalFiles:
    """Local trees: a move is one atomic rename (a copy, rename and delete across filesystems)."""

    copies = False

    def sha(self, loc: str) -> str | None:
        try:
            return file_sha256(loc)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def read(self, loc: str) -> bytes | None:
        try:
            return Path(loc).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, loc: str, data: bytes) -> None:
        atomic_write_bytes(loc, data)

    def remove(self, loc: str) -> None:
        Path(loc).unlink(missing_ok=True)

    def exists(self, loc: str) -> bool:
        return os.path.lexists(loc)

    def move(self, src: str, dst: str, sha256: str) -> None:
        if os.path.lexists(dst):
            raise InputError(f"refusing to overwrite {dst}", "a previous run left it; check the journal")
        if not os.path.lexists(src):
            raise Gone(src)
        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            rename(Path(src), Path(dst))
        except FileNotFoundError as e:
            raise Gone(src) from e
        except OSError as e:
            raise InputError(f"cannot move {src} to {dst}: {e.strerror or e}",
                             "make the tree (and the destination) writable, then re-run; files moved so far "
                             "are journaled and can be undone") from e

    def made(self, dst: str, planned: set[str]) -> str | None:
        """The topmost folder a move to dst creates (not there now, nor made by an earlier planned move)."""
        made, p = None, Path(dst).parent
        while not p.exists() and str(p) not in planned and p != p.parent:
            made, p = str(p), p.parent
        return made

    def names(self, prefix: str) -> set[str]:
        out = set()
        for d, _, files in os.walk(prefix):
            out.update(os.path.join(d, f) for f in files)
        return out

    def prune(self, folders: Iterable[str], stop: str) -> None:
        prune_empty_dirs([Path(f) for f in folders], Path(stop))

    def check_writable(self, moves: Iterable[tuple[str, str]]) -> None:
        """Refuse before the first move when a source folder or a destination cannot be written."""
        dirs = set()
        for src, dst in moves:
            dirs.add(Path(src).parent)
            d = Path(dst).parent
            while not d.exists() and d != d.parent:
                d = d.parent
            dirs.add(d)
        for d in sorted(dirs):
            if not os.access(d, os.W_OK | os.X_OK):
                raise InputError(f"{d} is not writable: nothing was moved", "fix its permissions and re-run")


def rename(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as e:  # another filesystem: copy to a temp name, then rename, then remove the source
        if e.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.partial")
        try:
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            src.unlink()
        except OSError:  # never leave two copies
            dst.unlink()
            raise


class StoreFiles:
    """Object stores (fsspec): no rename, so copy → verify the copy's sha256 → delete the source."""

    copies = True  # a crash can leave both copies

    def sha(self, loc: str) -> str | None:
        data = self.read(loc)
        return None if data is None else sha_of(data)

    def read(self, loc: str) -> bytes | None:
        try:
            return storage.read_bytes(loc)
        except FileNotFoundError:
            return None

    def write(self, loc: str, data: bytes) -> None:
        storage.write_bytes(loc, data)

    def remove(self, loc: str) -> None:
        fs, p = storage.filesystem(loc)
        with storage._store_errors(loc):
            fs.rm_file(p)

    def exists(self, loc: str) -> bool:
        return storage.exists(loc)

    def move(self, src: str, dst: str, sha256: str) -> None:
        fs, s = storage.filesystem(src)
        _, d = storage.filesystem(dst)
        try:
            with storage._store_errors(src):
                fs.cp_file(s, d)  # not fs.copy: it globs '?', '*' and '[' in key names
        except FileNotFoundError:
            raise Gone(src) from None
        if self.sha(dst) != sha256:
            self.remove(dst)  # our copy of a source that changed since it was hashed
            raise Changed(src)
        self.remove(src)

    def made(self, dst: str, planned: set[str]) -> None:
        return None  # no folders on an object store

    def names(self, prefix: str) -> set[str]:
        try:
            return {storage.join(prefix, k) for k in storage.list_objects(prefix)}
        except InputError:
            return set()

    def prune(self, folders: Iterable[str], stop: str) -> None:
        pass

    def check_writable(self, moves: Iterable[tuple[str, str]]) -> None:
        pass


def files_for(root: str | os.PathLike) -> LocalFiles | StoreFiles:
    """The mover strategy, chosen once per tree: a rename where there is one, copy → verify → delete on stores."""
    return StoreFiles() if storage.is_url(root) else LocalFiles()


def location(root: str | os.PathLike) -> str:
    """A tree root as journals write it: the URL without a trailing slash, or the resolved local path."""
    return str(storage.resolved(root))


class FreeNames:
    """dst, or dst with ~2, ~3 … before the suffix when that file exists (an earlier run's quarantine)."""

    def __init__(self, files: LocalFiles | StoreFiles, prefix: str):
        self.taken = files.names(prefix)

    def __call__(self, dst: str) -> str:
        head, _, name = dst.rpartition("/")
        p = PurePosixPath(name)
        cand, i = dst, 1
        while cand in self.taken:
            i += 1
            cand = f"{head}/{p.stem}~{i}{p.suffix}"
        self.taken.add(cand)
        return cand


def check_outside_splits(root: str, split_dirs: dict[str, str], target: str, what: str = "quarantine") -> None:
    """Refuse a quarantine (or other destination) inside a split root or equal to the tree."""
    root, target = location(root), location(target)
    if target == root:  # files would only be renamed inside their own split folders
        raise InputError(f"the {what} {target} is the tree itself", "choose a folder outside every split root")
    for folder in split_dirs.values():
        sp = f"{root}/{folder}" if folder else root
        if target == sp or target.startswith(sp + "/"):
            raise InputError(f"the {what} {target} is inside the split folder {sp}",
                             "choose a folder outside every split root")
