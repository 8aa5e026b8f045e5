"""Journaled, undoable moves on object-store trees (s3://…): relocate.py for buckets.

Object stores have no rename, so a move is copy → verify the copy's sha256 → delete the source; nothing is
deleted before its copy is verified. The journal (JSON lines: from, to, sha256, written and fsynced BEFORE
each move) lives locally in storage.url_state_dir(root)/journal, and a copy of it is uploaded to
`<quarantine>.journal/`. Rewrites of curate's own files in the tree (manifest.parquet, curate.json …) keep
their previous bytes beside the local journal, so `undo_url` puts everything back byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from curate import storage
from curate.errors import CurateError, InputError
from curate.relocate import UndoReport
from curate.tree import atomic_write_bytes, atomic_write_json

UPLOAD_EVERY = 100  # moves between uploads of the journal copy


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(url: str) -> bytes | None:
    try:
        return storage.read_bytes(url)
    except FileNotFoundError:
        return None


def _objects(url: str) -> set[str]:
    """Relative paths of the objects under a prefix ({} when there are none)."""
    try:
        return set(storage.list_objects(url))
    except InputError:
        return set()


def check_outside_splits_url(root: str, split_dirs: dict[str, str], target: str, what: str = "quarantine") -> None:
    target = target.rstrip("/")
    for folder in split_dirs.values():
        sp = f"{root}/{folder}" if folder else root
        if target == sp or target.startswith(sp + "/"):
            raise InputError(f"the {what} {target} is inside the split folder {sp}",
                             "choose a prefix outside every split root")


class FreeNames:
    """dst, or dst with ~2, ~3 … before the suffix when that object exists (an earlier run's quarantine)."""

    def __init__(self, prefix: str):
        self.prefix = prefix.rstrip("/")
        self.taken = {f"{self.prefix}/{k}" for k in _objects(self.prefix)}

    def __call__(self, dst: str) -> str:
        cand, i = dst, 1
        head, dot, ext = dst.rpartition(".")
        if "/" in ext or not dot:
            head, dot, ext = dst, "", ""
        while cand in self.taken:
            i += 1
            cand = f"{head}~{i}{dot}{ext}"
        self.taken.add(cand)
        return cand


def journal_dir(root: str) -> Path:
    return storage.url_state_dir(root) / "journal"


@dataclass
class UrlRelocation:
    """One journaled operation on an object-store tree: moves plus rewrites of curate's own files."""

    root: str
    op: str
    copy_to: str  # prefix for the uploaded copy of the journal
    path: Path | None = None
    state: dict = field(default_factory=lambda: {"files": []})
    moved: int = 0

    def __post_init__(self):
        self.state["journal_copy"] = self.copy_to

    def _open(self) -> Path:
        if self.path is None:
            jdir = journal_dir(self.root)
            jdir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.path, i = jdir / f"{stamp}-{self.op}.jsonl", 1
            while self.path.exists() or self.path.with_suffix(".state.json").exists():
                i += 1
                self.path = jdir / f"{stamp}-{self.op}-{i}.jsonl"
            self._f = open(self.path, "a", encoding="utf-8")
            self._line({"op": self.op, "root": self.root, "created": time.time()})
            self.upload()
        return self.path

    def _line(self, obj) -> None:
        self._f.write(json.dumps(obj, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def upload(self) -> None:
        storage.write_bytes(f"{self.copy_to}/{self.path.name}", self.path.read_bytes())

    def move(self, src: str, dst: str, sha256: str) -> None:
        """Journal, copy, verify the copy, then delete the source."""
        self._open()
        self._line({"from": src, "to": dst, "sha256": sha256})
        fs, s = storage.filesystem(src)
        _, d = storage.filesystem(dst)
        try:
            with storage._store_errors(src):
                fs.cp_file(s, d)  # not fs.copy: it globs '?', '*' and '[' in key names
        except FileNotFoundError:
            self._line({"cancel": src})  # nothing was copied or deleted
            raise CurateError(f"{src} disappeared since it was hashed; stopped before moving it",
                              f"rerun `curate {self.op}`; `curate {self.op} --undo {self.root}` puts back "
                              "what was moved") from None
        if _sha(storage.read_bytes(dst)) != sha256:
            with storage._store_errors(dst):
                fs.rm_file(d)  # our copy of a source that changed since it was hashed
            self._line({"cancel": src})  # that move did not happen
            raise CurateError(f"{src} changed since it was hashed; stopped before deleting it",
                              f"rerun; `curate {self.op} --undo {self.root}` puts back what was moved")
        with storage._store_errors(src):
            fs.rm_file(s)
        self.moved += 1
        if self.moved % UPLOAD_EVERY == 0:
            self.upload()

    def write(self, url: str, data: bytes) -> None:
        """Write one of curate's files in the tree, keeping its old bytes for undo."""
        self.record(url, _read(url), data)
        storage.write_bytes(url, data)

    def record(self, url: str, before: bytes | None, after: bytes) -> None:
        """Note a rewrite (old bytes `before`, None when it was new) done by someone else."""
        backup = None
        if before is not None:
            backup = f"{self._open().stem}.backup/{len(self.state['files'])}-{url.rsplit('/', 1)[-1]}"
            atomic_write_bytes(self.path.parent / backup, before)
            storage.write_bytes(f"{self.copy_to}/{backup}", before)
        self._open()
        self.state["files"].append({"path": url, "backup": backup, "sha256": _sha(after)})  # backup: relative

    def close(self) -> Path | None:
        if self.path is None:
            return None
        spath = self.path.with_name(self.path.stem + ".state.json")
        atomic_write_json(spath, self.state)
        self._line({"done": True})
        self._f.close()
        self.upload()
        storage.write_bytes(f"{self.copy_to}/{spath.name}", spath.read_bytes())
        return self.path


def _entries(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a crash: the move after it never happened
        if "from" in obj:
            out.append(obj)
        elif "cancel" in obj and out and out[-1]["from"] == obj["cancel"]:
            out.pop()
    return out


def _undo_moves(path: Path, rep: UndoReport) -> None:
    for e in reversed(_entries(path)):
        src, dst = e["from"], e["to"]
        moved = _read(dst)
        here = _read(src)
        if moved is None:
            if here is not None and _sha(here) == e["sha256"]:
                continue  # the move never happened (crash between journal line and copy)
            rep.missing.append(dst)
            continue
        if here is not None:
            if _sha(here) == e["sha256"] and _sha(moved) == e["sha256"]:
                storage.filesystem(dst)[0].rm_file(storage.filesystem(dst)[1])  # crash before the delete
                rep.restored += 1
            else:
                rep.conflicts.append(src)
            continue
        if _sha(moved) != e["sha256"]:
            rep.conflicts.append(dst)
            continue
        storage.write_bytes(src, moved)
        if _sha(storage.read_bytes(src)) != e["sha256"]:
            raise CurateError(f"restoring {src} did not verify; {dst} is left in place", "rerun the undo")
        fs, d = storage.filesystem(dst)
        with storage._store_errors(dst):
            fs.rm_file(d)
        rep.restored += 1


def _undo_files(spath: Path, rep: UndoReport) -> None:
    state = json.loads(spath.read_text(encoding="utf-8"))
    for f in reversed(state.get("files", [])):
        url = f["path"]
        now = _read(url)
        if now is not None and _sha(now) != f["sha256"]:
            rep.files_changed_since.append(url)
            continue
        if f["backup"]:
            storage.write_bytes(url, (spath.parent / f["backup"]).read_bytes())
        elif now is not None:
            fs, p = storage.filesystem(url)
            with storage._store_errors(url):
                fs.rm_file(p)  # curate created it in that run
        rep.files_restored.append(url)


def _pending(root: str, op: str) -> list[str]:
    jdir = journal_dir(root)
    if not jdir.is_dir():
        return []
    stems = {p.name.split(".")[0] for p in jdir.glob(f"*-{op}*.jsonl") if ".undone" not in p.name}
    stems |= {p.name.split(".")[0] for p in jdir.glob(f"*-{op}*.state.json")}
    return sorted(stems, reverse=True)


def fetch_journals(root: str, copy_to: str) -> int:
    """Download the uploaded journal copies not yet undone (another machine ran the op); returns how many."""
    jdir = journal_dir(root)
    names = _objects(copy_to)
    stems = {n.split(".")[0] for n in names if n.endswith(".state.json")}
    stems -= {n.split(".")[0] for n in names if ".undone" in n}
    for n in sorted(names):
        if n.split(".")[0] in stems and not (jdir / n).exists():
            atomic_write_bytes(jdir / n, storage.read_bytes(f"{copy_to}/{n}"))
    return len(stems)


def undo_url(root: str, op: str, copy_to: str | None = None) -> UndoReport:
    """Undo every not-yet-undone `op` on the object-store tree at `root`, newest first. Journals come from
    the local cache dir, or else from `copy_to` (the uploaded copies)."""
    root = str(root).rstrip("/")
    storage.list_objects(root)  # a missing bucket/prefix is one clear line
    stems = _pending(root, op)
    if not stems and copy_to and fetch_journals(root, copy_to):
        stems = _pending(root, op)
    if not stems:
        raise InputError(f"nothing to undo: no {op} journal for {root} on this machine",
                         f"journals live in {journal_dir(root)} (a copy is uploaded to the quarantine's "
                         ".journal/ prefix); run `curate {op}` first")
    jdir = journal_dir(root)
    total = UndoReport()
    for stem in stems:
        jpath, spath = jdir / f"{stem}.jsonl", jdir / f"{stem}.state.json"
        rep = UndoReport(journal=str(jpath))
        copy = json.loads(spath.read_text(encoding="utf-8")).get("journal_copy") if spath.exists() else None
        if jpath.exists():
            _undo_moves(jpath, rep)
        if rep.ok and spath.exists():
            _undo_files(spath, rep)
            os.replace(spath, spath.with_name(f"{stem}.state.undone.json"))
        if rep.ok and jpath.exists():
            os.replace(jpath, jpath.with_name(f"{stem}.undone.jsonl"))
            if copy:  # mark the uploaded copy undone too
                storage.write_bytes(f"{copy}/{stem}.undone.jsonl", jpath.with_name(f"{stem}.undone.jsonl").read_bytes())
        total.journal = rep.journal
        total.restored += rep.restored
        for name in ("missing", "conflicts", "files_restored", "files_changed_since"):
            getattr(total, name).extend(getattr(rep, name))
        if not rep.ok:
            break
    return total
