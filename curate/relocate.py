"""Journaled moves with undo, shared by dedupe (to quarantine) and resplit (between splits).

`Relocation` moves files through tree.Journal and, before it rewrites any of curate's own files in the
tree (manifest.parquet, curate.json, reports), keeps their previous bytes beside the journal. `undo(root,
op)` replays every run of `op` not yet undone, newest first: moves the files back (sha256-checked) and
restores those files when nobody changed them since.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import InputError
from curate.tree import (
    Journal,
    Tree,
    atomic_write_bytes,
    atomic_write_json,
    detect_splits,
    journals,
    prune_empty_dirs,
    undo_journal,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_name(dst: Path, taken: set[Path]) -> Path:
    """dst, or dst with ~2, ~3 … before the suffix when it exists (a quarantine from an earlier run)."""
    cand, i = dst, 1
    while cand.exists() or cand in taken:
        i += 1
        cand = dst.with_name(f"{dst.stem}~{i}{dst.suffix}")
    return cand


def check_outside_splits(root: Path, target: Path, what: str = "quarantine") -> None:
    tree = Tree(root=Path(root), split_dirs=detect_splits(Path(root)))  # the split folders; no file listing
    target = target.resolve()
    if target == Path(root).resolve():  # files would only be renamed inside their own split folders
        raise InputError(f"the {what} {target} is the tree itself", "choose a folder outside every split root")
    for split in tree.split_dirs:
        sp = tree.split_path(split).resolve()
        if target == sp or sp in target.parents:
            raise InputError(f"the {what} {target} is inside the split folder {sp}",
                             "choose a folder outside every split root")


def check_writable(moves: list[tuple[Path, Path]]) -> None:
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


@dataclass
class Relocation:
    """One journaled operation on a tree: moves plus rewrites of curate's own files, all undoable."""

    root: Path
    op: str
    journal: Journal | None = None
    state: dict = field(default_factory=lambda: {"files": []})
    moved: list[tuple[Path, Path]] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root).resolve()

    def _open(self) -> Journal:
        if self.journal is None:
            self.journal = Journal(self.root, self.op)
        return self.journal

    def move(self, src: Path, dst: Path, sha256: str | None = None) -> None:
        self._open().move(src, dst, sha256)
        self.moved.append((Path(src), Path(dst)))

    def write(self, path: Path, data: bytes) -> None:
        """Atomically write one of curate's files in the tree, keeping its old bytes for undo."""
        j = self._open()
        path = Path(path).resolve()
        backup = None
        if path.exists():
            bdir = j.path.with_name(j.path.stem + ".backup")
            bdir.mkdir(parents=True, exist_ok=True)
            backup = bdir / f"{len(self.state['files'])}-{path.name}"
            atomic_write_bytes(backup, path.read_bytes())
        atomic_write_bytes(path, data)
        self.state["files"].append({"path": str(path), "backup": str(backup) if backup else None,
                                    "sha256": _sha(data)})

    def close(self) -> Path | None:
        """Finish: prune folders the moves emptied, record the state; returns the journal path."""
        if self.journal is None:
            return None
        prune_empty_dirs([s.parent for s, _ in self.moved], self.root)
        path = self.journal.path
        atomic_write_json(path.with_name(path.stem + ".state.json"), self.state)
        self.journal.close()  # drops the journal when nothing moved; the state file then says what to undo
        return path


@dataclass
class UndoReport:
    journal: str | None = None
    restored: int = 0
    missing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    files_restored: list[str] = field(default_factory=list)
    files_changed_since: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.conflicts


def _pending_states(root: Path, op: str) -> list[Path]:
    from curate.tree import state_dir

    jdir = state_dir(root) / "journal"
    if not jdir.is_dir():
        return []
    return sorted(p for p in jdir.glob(f"*-{op}*.state.json"))


def _order(p: Path) -> tuple[str, int]:
    """Journal names are STAMP-OP.jsonl, then STAMP-OP-2.jsonl … within one second."""
    stem = p.name.split(".")[0]
    head, _, tail = stem.rpartition("-")
    return (head, int(tail)) if tail.isdigit() and not head.endswith(tuple("0123456789")) else (stem, 1)


def undo(root: str | Path, op: str, force: bool = False) -> UndoReport:
    """Undo every not-yet-undone `op` on the tree at `root`, newest first; stops at the first problem,
    or with `force` restores what it can, reports the rest and goes on to older runs."""
    root = Path(root).resolve()
    stems = sorted({p.name.split(".")[0]: p for p in [*_pending_states(root, op), *journals(root, op)]}.values(),
                   key=_order, reverse=True)
    if not stems:
        raise InputError(f"nothing to undo: no {op} journal for {root}", f"run `curate {op}` first")
    total = UndoReport()
    for p in stems:
        rep = _undo_one(p, force)
        total.journal = rep.journal
        total.restored += rep.restored
        for name in ("missing", "conflicts", "files_restored", "files_changed_since"):
            getattr(total, name).extend(getattr(rep, name))
        if not rep.ok and not force:
            break
    return total


def _undo_one(newest: Path, force: bool = False) -> UndoReport:
    stem = newest.name.split(".")[0]
    jpath = newest.with_name(stem + ".jsonl")
    spath = newest.with_name(stem + ".state.json")
    rep = UndoReport(journal=str(jpath))
    if jpath.exists():
        res = undo_journal(jpath, force)
        rep.restored, rep.missing, rep.conflicts = res.restored, res.missing, res.conflicts
    if spath.exists() and (rep.ok or force):
        state = json.loads(spath.read_text(encoding="utf-8"))
        for f in reversed(state.get("files", [])):
            p = Path(f["path"])
            if p.exists() and _sha(p.read_bytes()) != f["sha256"]:
                rep.files_changed_since.append(str(p))
                continue
            if f["backup"]:
                atomic_write_bytes(p, Path(f["backup"]).read_bytes())
            elif p.exists():
                p.unlink()  # curate created it in that run
            rep.files_restored.append(str(p))
        os.replace(spath, spath.with_name(stem + ".state.undone.json"))
    return rep
