"""The on-disk curate tree: its state folder, atomic writes and the move journal.

The layout (split folders, class folders, the scan) is curate.layout; its names are re-exported here.
Nothing but class folders goes inside a split root; curate's own state lives in `state_dir(root)`,
outside every split root.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import InputError
from curate.layout import (  # noqa: F401  (re-exported: the layout lives in curate.layout)
    IMAGE_EXTS,
    SPLIT_ALIASES,
    SPLIT_ORDER,
    Tree,
    TreeFile,
    canonical_split,
    detect_splits,
    is_image_name,
    scan_tree,
)

MANIFEST_NAME = "manifest.parquet"
INFO_NAME = "curate.json"


def state_dir(root: str | Path) -> Path:
    """Where curate keeps caches and journals for a tree: ROOT/.curate (hidden, outside split roots).

    ImageFolder skips nothing, so for a single split root (class folders directly under ROOT) the state
    goes beside it instead, as ROOT.curate/.
    """
    root = Path(root).resolve()
    if list(detect_splits(root).values()) == [""]:
        return root.parent / f".{root.name}.curate"
    return root / ".curate"


def default_quarantine(root: str | Path) -> Path:
    root = Path(root).resolve()
    return root.parent / f"{root.name}.quarantine"


# ---------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:  # mkstemp makes 0600 files: keep the old file's mode, else what open() would give
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_UMASK: list[int] = []


def _umask() -> int:
    if not _UMASK:
        _UMASK.append(os.umask(0o022))
        os.umask(_UMASK[0])
    return _UMASK[0]


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """Strict JSON values: NaN and infinities (json.dumps would write bare NaN/Infinity) become null, and
    numpy scalars become Python numbers (not strings)."""
    if type(obj).__module__ == "numpy" and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def json_bytes(obj) -> bytes:
    """The one JSON encoding curate writes (local files and object stores alike): sorted, strict."""
    return (json.dumps(json_safe(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n").encode()


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- journaled moves


class Journal:
    """Moves files with a JSON-lines journal written (and fsynced) before each move.

    `undo_journal` replays it backwards, checking each file's sha256, so a move is always recoverable.
    """

    def __init__(self, root: str | Path, op: str):
        self.root = Path(root).resolve()
        jdir = state_dir(self.root) / "journal"
        jdir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = jdir / f"{stamp}-{op}.jsonl"
        i = 1
        while self.path.exists():
            i += 1
            self.path = jdir / f"{stamp}-{op}-{i}.jsonl"
        self._f = open(self.path, "a", encoding="utf-8")
        self._write({"op": op, "root": str(self.root), "created": time.time()})
        self.moved = 0

    def _write(self, obj) -> None:
        self._f.write(json.dumps(obj, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def move(self, src: str | Path, dst: str | Path, sha256: str | None = None) -> None:
        src, dst = Path(src).resolve(), Path(dst).resolve()
        if dst.exists():
            raise InputError(f"refusing to overwrite {dst}", "a previous run left it; check the journal")
        sha = sha256 or file_sha256(src)
        made = dst.parent  # the topmost folder this move creates: undo removes it again when empty
        while not made.parent.exists():
            made = made.parent
        entry = {"from": str(src), "to": str(dst), "sha256": sha}
        if not made.exists():
            entry["made"] = str(made)
        self._write(entry)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            _move(src, dst)
        except OSError as e:
            raise InputError(f"cannot move {src} to {dst}: {e.strerror or e}",
                             "make the tree (and the destination) writable, then re-run; files moved so far "
                             "are journaled and can be undone") from e
        self.moved += 1

    def close(self) -> None:
        self._write({"done": True})
        self._f.close()
        if self.moved == 0:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._f.closed:
            self.close()


def _move(src: Path, dst: Path) -> None:
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
        except OSError:  # never leave two copies: the journal says the file moved
            dst.unlink()
            raise


def journals(root: str | Path, op: str | None = None) -> list[Path]:
    """Journals not yet undone, newest last."""
    jdir = state_dir(root) / "journal"
    if not jdir.is_dir():
        return []
    pats = sorted(jdir.glob(f"*-{op}*.jsonl" if op else "*.jsonl"))
    return [p for p in pats if not p.name.endswith(".undone.jsonl")]


def _entries(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: the move after it never happened
            if "from" in obj:
                yield obj


@dataclass
class UndoResult:
    restored: int = 0
    missing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def undo_journal(path: str | Path, force: bool = False) -> UndoResult:
    """Move every file of a journal back, newest move first, verifying bytes by sha256. The journal is
    closed when all came back, or with `force` (what could not come back is reported and left)."""
    path = Path(path)
    res = UndoResult()
    for e in reversed(list(_entries(path))):
        src, dst = Path(e["from"]), Path(e["to"])
        if not dst.exists():
            if src.exists() and file_sha256(src) == e["sha256"]:
                _prune_made(e, dst)
                continue  # the move never happened (crash between journal line and move)
            res.missing.append(str(dst))
            continue
        if src.exists():
            res.conflicts.append(str(src))
            continue
        if file_sha256(dst) != e["sha256"]:
            res.conflicts.append(str(dst))
            continue
        try:
            src.parent.mkdir(parents=True, exist_ok=True)
            _move(dst, src)
        except OSError as err:
            raise InputError(f"cannot move {dst} back to {src}: {err.strerror or err}",
                             "make the tree writable and run the undo again") from err
        res.restored += 1
        _prune_made(e, dst)
    if force or (not res.missing and not res.conflicts):
        os.replace(path, path.with_name(path.name[: -len(".jsonl")] + ".undone.jsonl"))
    return res


def _prune_made(entry: dict, dst: Path) -> None:
    """Remove the folders a move created once they are empty (the newer moves into them are undone)."""
    if "made" in entry:
        prune_empty_dirs([dst.parent], Path(entry["made"]).parent)


def prune_empty_dirs(paths: Iterable[Path], stop: Path) -> None:
    """Remove folders left empty by moves, walking up but never past `stop`."""
    stop = stop.resolve()
    for p in sorted({Path(x).resolve() for x in paths}, key=lambda x: -len(x.parts)):
        while p != stop and stop in p.parents:
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent
