"""A set of files under a tree root that becomes complete at once: one write contract, two implementations.

`file_set(root, folder)` picks the implementation once, from the root:
- `StagedFiles` (local folders): files go to FOLDER.tmp/files/<rel>, the marker to FOLDER.tmp/MARKER
  (temp + fsync + rename), then FOLDER.tmp is renamed to FOLDER. `publish` moves the files to ROOT/<rel>
  (os.replace; a rerun moves what is still staged).
- `MarkedFiles` (object stores, which have no rename): files go straight to ROOT/<rel> (concurrent puts in
  bounded batches; a rerun writes the same bytes), and the marker object FOLDER/MARKER is written last.
  `publish` has nothing left to do.

Either way a set is complete exactly when `marker()` returns its bytes; a complete set is never rewritten.
The crop and detection shards use it (FOLDER = .curate/shards/<name>, MARKER = records.json).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from curate.core import storage
from curate.core.tree import atomic_write_bytes

MARKER = "records.json"


class StagedFiles:
    """Local: stage in FOLDER.tmp, write the marker, rename FOLDER.tmp -> FOLDER, then publish."""

    def __init__(self, root: str | os.PathLike, folder: str) -> None:
        self.root = str(storage.local_path(root))
        self.done = f"{self.root}/{folder}"
        self.tmp = f"{self.done}.tmp"
        self._made: set[str] | None = None  # folders made under tmp/files (None: staging not started)

    def marker(self) -> bytes | None:
        try:
            with open(f"{self.done}/{MARKER}", "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write(self, rel: str, data: bytes) -> None:
        made = self._start()
        folder = rel.rpartition("/")[0]
        if folder not in made:
            os.makedirs(f"{self.tmp}/files/{folder}", exist_ok=True)
            made.add(folder)
        with open(f"{self.tmp}/files/{rel}", "wb") as f:  # no fsync per file: the marker's rename commits
            f.write(data)

    def commit(self, marker: bytes) -> None:
        self._start()
        atomic_write_bytes(f"{self.tmp}/{MARKER}", marker)
        if os.path.exists(self.done):
            shutil.rmtree(self.done)
        os.replace(self.tmp, self.done)

    def publish(self, rels: Iterable[str]) -> list[str]:
        """Move a complete set's files into the tree; returns those neither staged nor in place."""
        staged = f"{self.done}/files"
        lost, made = [], set()
        for rel in rels:
            folder = rel.rpartition("/")[0]
            if folder not in made:
                os.makedirs(f"{self.root}/{folder}", exist_ok=True)
                made.add(folder)
            try:
                os.replace(f"{staged}/{rel}", f"{self.root}/{rel}")
            except FileNotFoundError:  # moved by an earlier, interrupted run
                if not os.path.exists(f"{self.root}/{rel}"):
                    lost.append(rel)
        return lost

    def _start(self) -> set[str]:
        """A fresh staging folder (what an interrupted run left there is dropped)."""
        if self._made is None:
            if os.path.exists(self.tmp):
                shutil.rmtree(self.tmp)
            os.makedirs(f"{self.tmp}/files")
            self._made = set()
        return self._made


class MarkedFiles:
    """Object store: files straight to their final keys, the marker object last."""

    def __init__(self, root: str | os.PathLike, folder: str, batch: int = 256) -> None:
        self.root = str(root).rstrip("/")
        self.marker_url = storage.join(self.root, folder, MARKER)
        self.batch = batch  # bounded memory; the puts of one batch go out concurrently
        self._pending: dict[str, bytes] = {}

    def marker(self) -> bytes | None:
        return storage.read_bytes(self.marker_url) if storage.exists(self.marker_url) else None

    def write(self, rel: str, data: bytes) -> None:
        self._pending[storage.join(self.root, rel)] = data
        if len(self._pending) >= self.batch:
            self._flush()

    def commit(self, marker: bytes) -> None:
        self._flush()
        storage.write_bytes(self.marker_url, marker)

    def publish(self, rels: Iterable[str]) -> list[str]:
        return []  # the files were written to their final keys

    def _flush(self) -> None:
        if self._pending:
            storage.write_many(self._pending)
            self._pending = {}


def file_set(root: str | os.PathLike, folder: str) -> StagedFiles | MarkedFiles:
    """The write strategy for ROOT, chosen once: staged + renamed locally, marker-last on object stores."""
    return MarkedFiles(root, folder) if storage.is_url(root) else StagedFiles(root, folder)
