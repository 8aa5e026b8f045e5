"""The on-disk curate tree: its state folder and atomic writes (journaled moves: curate.moves.journal).

The layout (split folders, class folders, the scan) is curate.core.layout.
Nothing but class folders goes inside a split root; curate's own state lives in `state_dir(root)`,
outside every split root.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from curate.core.layout import detect_splits

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


# ---------------------------------------------------------------- folders


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


def files_fingerprint(path: Path, skip_top: Iterable[str] = ()) -> str:
    """Names, sizes and modification times of a file, or of every file under a folder (sorted; names
    in `skip_top` left out at the top level): what tells an unchanged input from a changed one without
    reading it. A file that vanishes while it is walked is left out."""
    h = hashlib.sha256()
    if path.is_file():
        st = path.stat()
        h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()
    skip = set(skip_top)
    for dirpath, dirnames, files in os.walk(path):
        rel_dir = Path(dirpath).relative_to(path)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
            files = [f for f in files if f not in skip]
        dirnames.sort()
        for f in sorted(files):
            try:
                st = Path(dirpath, f).stat()
            except OSError:
                continue
            h.update(f"{(rel_dir / f).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
