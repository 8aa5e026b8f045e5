"""Undo: replay a tree's journals (curate.moves.journal) newest first and move every file back, sha256-checked.

A planned move that never happened is reported as such, a torn last line is skipped and counted, and
`force` restores what it can when some files are missing or changed. Journals of the old format (move
lines written just before each move, rewrites in STEM.state.json) are read too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from curate.core import storage
from curate.core.errors import InputError
from curate.core.tree import atomic_write_bytes
from curate.moves.journal import Entries, journal_dir, mark_undone, pending_journals, read_journal
from curate.moves.movers import Changed, Gone, files_for, location, sha_of


@dataclass
class UndoReport:
    journal: str | None = None
    restored: int = 0
    never_moved: list[str] = field(default_factory=list)  # planned, but the run stopped before moving them
    missing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    files_restored: list[str] = field(default_factory=list)
    files_changed_since: list[str] = field(default_factory=list)
    torn: int = 0  # journal lines skipped: torn by a crash mid-write

    @property
    def ok(self) -> bool:
        return not self.missing and not self.conflicts

    def add(self, other: UndoReport) -> None:
        self.journal = other.journal
        self.restored += other.restored
        self.torn += other.torn
        for name in ("never_moved", "missing", "conflicts", "files_restored", "files_changed_since"):
            getattr(self, name).extend(getattr(other, name))


def fetch_journals(root: str, copy_to: str) -> int:
    """Download the uploaded journal copies not yet undone (another machine ran the op); returns how many."""
    jdir = journal_dir(root)
    try:
        names = set(storage.list_objects(copy_to))
    except InputError:
        return 0
    stems = {n.split(".")[0] for n in names if n.endswith(".jsonl") or n.endswith(".state.json")}
    stems -= {n.split(".")[0] for n in names if ".undone" in n}
    for n in sorted(names):
        if n.split(".")[0] in stems and ".pending" not in n and not (jdir / n).exists():
            atomic_write_bytes(jdir / n, storage.read_bytes(f"{copy_to}/{n}"))
    return len(stems)


def undo(root, op: str, force: bool = False, copy_to: str | None = None) -> UndoReport:
    """Undo every not-yet-undone `op` on the tree, newest first; stops at the first problem, or with `force`
    restores what it can, reports the rest and goes on to older runs. Journals come from the local state
    folder, or else (object stores) from the uploaded copies under `copy_to`."""
    root = location(root)
    storage.check_reachable(root)  # a missing bucket/prefix is one clear line
    found = pending_journals(root, op)
    if not found and copy_to and fetch_journals(root, copy_to):  # (copy_to: object-store trees only)
        found = pending_journals(root, op)
    if not found:
        raise InputError(f"nothing to undo: no {op} journal for {root}",
                         f"run `curate {op}` first; journals live in {journal_dir(root)}")
    total = UndoReport()
    for path in reversed(found):
        rep = _undo_one(root, path, force, copy_to)
        total.add(rep)
        if not rep.ok and not force:
            break
    return total


def _undo_one(root: str, path: Path, force: bool, copy_to: str | None) -> UndoReport:
    files = files_for(root)
    stem = path.name.split(".")[0]
    jpath, spath = path.with_name(stem + ".jsonl"), path.with_name(stem + ".state.json")
    rep = UndoReport(journal=str(jpath))
    j = read_journal(jpath) if jpath.exists() else Entries()
    rep.torn = j.torn
    for e in reversed(j.moves):
        _undo_move(files, e, rep)
    if not rep.ok and not force:
        return rep
    writes = j.writes
    if spath.exists():  # the old format kept rewrites in STEM.state.json
        state = json.loads(spath.read_text(encoding="utf-8"))
        writes = [{"write": f["path"], "backup": f["backup"], "sha256": f["sha256"]} for f in state.get("files", [])]
        copy_to = copy_to or state.get("journal_copy")
    for w in reversed(writes):
        _undo_write(files, jpath, w, rep)
    mark_undone(jpath if jpath.exists() else spath, copy_to)
    return rep


def _undo_move(files, e: dict, rep: UndoReport) -> None:
    src, dst, sha = e["from"], e["to"], e["sha256"]
    moved, here = files.sha(dst), files.sha(src)
    if moved is None:
        if here is not None:
            rep.never_moved.append(src)  # journaled, but the run stopped before this move
        else:
            rep.missing.append(dst)
    elif here is not None:
        if here == sha and moved == sha:
            files.remove(dst)  # an object-store crash between the copy and the delete
            rep.restored += 1
        else:
            rep.conflicts.append(src)
    elif moved != sha:
        rep.conflicts.append(dst)
    else:
        try:
            files.move(dst, src, sha)
        except (Gone, Changed):
            rep.conflicts.append(dst)
            return
        except OSError as err:
            raise InputError(f"cannot move {dst} back to {src}: {err.strerror or err}",
                             "make the tree writable and run the undo again") from err
        rep.restored += 1
    if "made" in e:  # the folders this move created, once empty again
        files.prune([str(Path(dst).parent)], str(Path(e["made"]).parent))


def _undo_write(files, jpath: Path, w: dict, rep: UndoReport) -> None:
    path = w["write"]
    backup = jpath.with_name(jpath.stem + ".backup") / w["backup"] if w["backup"] else None
    if backup is not None and w["backup"].startswith("/"):
        backup = Path(w["backup"])  # the old local format: an absolute path
    elif backup is not None and "/" in w["backup"]:
        backup = jpath.parent / w["backup"]  # the old object-store format: relative to the journal folder
    now = files.read(path)
    old = backup.read_bytes() if backup is not None else None
    if now is not None and sha_of(now) != w["sha256"]:
        if now != old:
            rep.files_changed_since.append(path)
        return  # changed since, or never rewritten (the run stopped first)
    if old is not None:
        files.write(path, old)
    elif now is not None:
        files.remove(path)  # curate created it in that run
    rep.files_restored.append(path)
