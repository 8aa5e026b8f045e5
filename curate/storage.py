"""Path I/O that works for local paths and object-store URLs (s3://, gs://, file://) alike.

Local paths use plain file operations; URLs go through fsspec (installed with the `s3` extra).
Stages read and write through these functions, so the same shard code runs on a laptop or on a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.errors import InputError
from curate.tree import atomic_write_bytes


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    s = str(path)
    return Path(s[len("file://"):]) if s.startswith("file://") else Path(s)


def _fs(url: str):
    try:
        import fsspec
    except ImportError as e:
        raise InputError(f"{url} needs fsspec", "pip install 'curate[s3]'") from e
    fs, p = fsspec.core.url_to_fs(url)
    return fs, p


def join(base: str | os.PathLike, *parts: str) -> str:
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(local_path(base).joinpath(*parts))


def read_bytes(path: str | os.PathLike) -> bytes:
    if is_url(path):
        fs, p = _fs(str(path))
        with fs.open(p, "rb") as f:
            return f.read()
    return local_path(path).read_bytes()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomic for local paths (temp file + rename); object stores make single puts atomic."""
    if is_url(path):
        fs, p = _fs(str(path))
        fs.pipe_file(p, data)
        return
    atomic_write_bytes(local_path(path), data)


def exists(path: str | os.PathLike) -> bool:
    if is_url(path):
        fs, p = _fs(str(path))
        return fs.exists(p)
    return local_path(path).exists()
