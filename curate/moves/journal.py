"""One journal and one undo for the commands that move files (dedupe, resplit), on local trees and object stores.

A run writes its whole plan to a JSON-lines journal (each write fsynced) before the first move:

    {"format": 2, "op": ..., "root": ..., "created": ..., "options": {...}}   the header
    {"from": SRC, "to": DST, "sha256": ..., "made": DIR}                     one line per planned move ("made":
                                                                             the folder it creates, local only)
    {"planned": N}                                                           the plan is complete; moves start
    {"cancel": SRC}                                                          that move stopped before it happened
    {"write": PATH, "backup": NAME | null, "sha256": ...}                    a rewrite of curate's own files (its
                                                                             old bytes in STEM.backup/NAME)
    {"done": true}                                                           the run finished

Journals live in storage.state_dir_of(root)/journal as STAMP-OP.jsonl. The new bytes of every planned rewrite
and the run's outcome are kept in STEM.pending/ until the run is done, so a rerun of an interrupted run
finishes that plan (`Relocation.resume`) instead of planning again on a half-moved tree. For object stores a
copy of the journal is uploaded beside the quarantine after the plan, every UPLOAD_EVERY moves, and last at
the end. `undo` replays journals newest first and moves files back, sha256-checked; it also reads journals
of the old format (move lines written just before each move, rewrites in STEM.state.json).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from curate.core import storage
from curate.core.errors import CurateError, InputError
from curate.core.manifest import update_info
from curate.core.tree import INFO_NAME, atomic_write_bytes
from curate.engine.executor import progress_bar
from curate.moves.movers import Changed, Gone, files_for, location, sha_of

UPLOAD_EVERY = 100  # moves between uploads of the journal copy (object stores)


def journal_dir(root: str | Path) -> Path:
    return storage.state_dir_of(root) / "journal"


@dataclass
class Entries:
    """A journal read back: its header, planned moves (cancelled ones dropped), rewrites, torn lines."""

    header: dict = field(default_factory=dict)
    moves: list[dict] = field(default_factory=list)
    writes: list[dict] = field(default_factory=list)
    torn: int = 0
    planned: bool = False
    done: bool = False


def read_journal(path: Path) -> Entries:
    out = Entries()
    cancelled: set[str] = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            out.torn += 1  # a torn line from a crash mid-write
            continue
        if "from" in obj:
            out.moves.append(obj)
        elif "cancel" in obj:
            cancelled.add(obj["cancel"])
        elif "write" in obj:
            out.writes.append(obj)
        elif "op" in obj and not out.header:
            out.header = obj
        out.planned |= "planned" in obj
        out.done |= obj.get("done") is True
    out.moves = [m for m in out.moves if m["from"] not in cancelled]
    return out


def _new_path(jdir: Path, op: str) -> Path:
    jdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, i = jdir / f"{stamp}-{op}.jsonl", 1
    while any(jdir.glob(f"{path.stem}.*")):
        i += 1
        path = jdir / f"{stamp}-{op}-{i}.jsonl"
    return path


class Relocation:
    """One journaled run on a tree: planned moves, then rewrites of curate's own files, all undoable."""

    def __init__(self, root, op: str, *, options: dict | None = None, copy_to: str | None = None):
        self.root, self.op = location(root), op
        self.files = files_for(self.root)
        self.options = options or {}
        self.copy_to = copy_to  # object stores: prefix for the uploaded copy of the journal
        self.path: Path | None = None
        self.plan: list[dict] = []
        self.writes: list[tuple[str, bytes]] = []
        self.written: set[str] = set()
        self.outcome = None
        self.moved = 0
        self.resumed = False
        self._f = None

    # ------------------------------------------------------------ a new run

    def start(self, moves: list[tuple[str, str, str | None]], writes: list[tuple[str, bytes]] = (),
              outcome=None) -> None:
        """Journal the whole plan: every move (src, dst, sha256 or None to hash it now) and the new bytes of
        every rewrite; nothing moves yet."""
        moves = [(str(s), str(d), h) for s, d, h in moves]
        self.files.check_writable([(s, d) for s, d, _ in moves])
        made: set[str] = set()
        for src, dst, sha in moves:
            entry = {"from": src, "to": dst, "sha256": sha or self.files.sha(src)}
            if m := self.files.made(dst, made):
                entry["made"] = m
                made.update(str(p) for p in [Path(dst).parent, *Path(dst).parents] if str(p).startswith(m))
            self.plan.append(entry)
        self.writes, self.outcome = [(str(p), b) for p, b in writes], outcome
        if not self.plan and not self.writes:
            return
        self.path = _new_path(journal_dir(self.root), self.op)
        pending = self._pending()
        pending.mkdir(parents=True, exist_ok=True)
        for i, (_, data) in enumerate(self.writes):
            atomic_write_bytes(pending / str(i), data)
        atomic_write_bytes(pending / "outcome.pkl", pickle.dumps(outcome))
        self._f = open(self.path, "a", encoding="utf-8")
        header = {"format": 2, "op": self.op, "root": self.root, "created": time.time(), "options": self.options,
                  "writes": [p for p, _ in self.writes]}
        self._lines([header, *self.plan, {"planned": len(self.plan)}])
        self.upload()

    def run(self, quiet: bool = True) -> Path | None:
        """Do the planned moves not yet done (a progress bar unless `quiet`), then the rewrites; returns
        the journal."""
        if self.path is None:
            return None
        if self.resumed:
            self._check()
        todo = [e for e in self.plan if not e.get("done")]
        with progress_bar(quiet) as bar:
            task = bar.add_task("quarantining" if self.op == "dedupe" else "moving", total=len(todo), unit="files")
            for e in todo:
                self._move(e)
                bar.advance(task)
        self.files.prune([str(Path(e["from"]).parent) for e in self.plan], self.root)
        for i, (p, data) in enumerate(self.writes):
            self._write(i, p, data)
        return self.close()

    def _move(self, e: dict) -> None:
        try:
            self.files.move(e["from"], e["to"], e["sha256"])
        except (Gone, Changed) as err:
            self._lines([{"cancel": e["from"]}])
            self.upload()
            what = "disappeared" if isinstance(err, Gone) else "changed"
            raise CurateError(f"{e['from']} {what} since it was hashed; stopped before moving it",
                              f"`curate {self.op} --undo {self.root}` puts back what was moved") from None
        self.moved += 1
        if self.copy_to and self.moved % UPLOAD_EVERY == 0:
            self.upload()

    def _write(self, i: int, path: str, data: bytes) -> None:
        """Rewrite one of curate's files in the tree, its old bytes kept for undo (journal first)."""
        if path not in self.written:  # a resumed run: the first try kept the old bytes already
            old = self.files.read(path)
            backup = None
            if old is not None:
                backup = f"{i}-{path.rsplit('/', 1)[-1]}"
                atomic_write_bytes(self._backups() / backup, old)
                if self.copy_to:
                    storage.write_bytes(f"{self.copy_to}/{self._backups().name}/{backup}", old)
            self._lines([{"write": path, "backup": backup, "sha256": sha_of(data)}])
        self.files.write(path, data)

    def close(self) -> Path:
        self._lines([{"done": True}])
        self._f.close()
        shutil.rmtree(self._pending(), ignore_errors=True)
        self.upload()  # last: the copy says done only when everything is
        return self.path

    # ------------------------------------------------------------ an interrupted run

    @classmethod
    def resume(cls, root, op: str, options: dict, copy_to: str | None = None) -> Relocation | None:
        """The unfinished run of `op` on this tree, or None; `run` finishes it. Raises when its options differ."""
        root = location(root)
        for path in reversed(pending_journals(root, op)):
            j = read_journal(path)
            if path.suffix != ".jsonl" or j.done or j.header.get("format") != 2:
                continue
            if not j.planned:  # stopped while writing the plan: nothing moved; set it aside
                mark_undone(path, None)
                continue
            undo_hint = f"undo it with: curate {op} --undo {root}"
            if j.header.get("options") != json.loads(json.dumps(options)):
                raise InputError(f"an interrupted `curate {op}` with other options is unfinished ({path.name})",
                                 f"rerun it with the same options to finish it, or {undo_hint}")
            rel = cls(root, op, options=options, copy_to=copy_to)
            rel.path, rel.plan, rel.resumed = path, j.moves, True
            rel.written = {w["write"] for w in j.writes}
            pending = rel._pending()
            rel.writes = [(p, (pending / str(i)).read_bytes()) for i, p in enumerate(j.header.get("writes", []))]
            rel.outcome = pickle.loads((pending / "outcome.pkl").read_bytes())
            return rel
        return None

    def _check(self) -> None:
        """A resumed run: which planned moves happened; raises when the tree changed under the plan."""
        for e in self.plan:
            state = self._state(e)
            if state is None:
                raise InputError(f"cannot finish the interrupted `curate {self.op}`: {e['from']} changed since "
                                 "it was planned", f"undo it with: curate {self.op} --undo {self.root}")
            e["done"] = state
        self._f = open(self.path, "a", encoding="utf-8")

    def _state(self, e: dict) -> bool | None:
        """True when a planned move happened, False when it is still to do, None when the tree changed."""
        dst, src = self.files.sha(e["to"]), self.files.sha(e["from"])
        if dst == e["sha256"]:
            if src == e["sha256"] and self.files.copies:
                self.files.remove(e["from"])  # an object-store crash between the copy and the delete
                return True
            return True if src is None else None
        return False if dst is None and src == e["sha256"] else None

    # ------------------------------------------------------------ helpers

    def _lines(self, objs: list[dict]) -> None:
        self._f.write("".join(json.dumps(o, sort_keys=True) + "\n" for o in objs))
        self._f.flush()
        os.fsync(self._f.fileno())

    def _pending(self) -> Path:
        return self.path.with_name(self.path.stem + ".pending")

    def _backups(self) -> Path:
        return self.path.with_name(self.path.stem + ".backup")

    def upload(self) -> None:
        if self.copy_to and self.path is not None:
            storage.write_bytes(f"{self.copy_to}/{self.path.name}", self.path.read_bytes())


def relocate(root, op: str, moves, writes=(), *, options: dict | None = None, copy_to: str | None = None,
             outcome=None) -> Path | None:
    """Plan, journal and do one run: `moves` (src, dst, sha256 or None), then `writes` (path, bytes)."""
    rel = Relocation(root, op, options=options, copy_to=copy_to)
    rel.start(moves, writes, outcome)
    return rel.run()


# ---------------------------------------------------------------- finished and undone journals (curate.moves.undo replays them)


def _order(p: Path) -> tuple[str, int]:
    """Journal names are STAMP-OP.jsonl, then STAMP-OP-2.jsonl … within one second."""
    stem = p.name.split(".")[0]
    head, _, tail = stem.rpartition("-")
    return (head, int(tail)) if tail.isdigit() and not head.endswith(tuple("0123456789")) else (stem, 1)


def pending_journals(root: str, op: str) -> list[Path]:
    """Journals (or old-format state files) of `op` not yet undone, oldest first."""
    jdir = journal_dir(root)
    if not jdir.is_dir():
        return []
    found = {p.name.split(".")[0]: p for p in jdir.glob(f"*-{op}*.state.json")}
    found.update({p.name.split(".")[0]: p for p in jdir.glob(f"*-{op}*.jsonl") if ".undone" not in p.name})
    return sorted(found.values(), key=_order)


def mark_undone(path: Path, copy_to: str | None) -> None:
    """STEM.jsonl -> STEM.undone.jsonl (STEM.state.json -> STEM.state.undone.json), and the uploaded copy."""
    stem = path.name.split(".")[0]
    for p in (path.with_name(stem + ".jsonl"), path.with_name(stem + ".state.json")):
        if p.exists():
            done = p.with_name(p.name.replace(".jsonl", ".undone.jsonl").replace(".state.json", ".state.undone.json"))
            os.replace(p, done)
            if copy_to and done.suffix == ".jsonl":
                storage.write_bytes(f"{copy_to}/{done.name}", done.read_bytes())
    shutil.rmtree(path.with_name(stem + ".pending"), ignore_errors=True)


def staged_info(root, step: str, record: dict) -> bytes:
    """curate.json's bytes after manifest.update_info(root, step, record), the file itself left as it was."""
    files, path = files_for(root), storage.join(location(root), INFO_NAME)
    before = files.read(path)
    update_info(root, step, record)
    after = files.read(path)
    if before is None:
        files.remove(path)
    else:
        files.write(path, before)
    return after
