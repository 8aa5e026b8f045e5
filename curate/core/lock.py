"""One writer per tree: an exclusive lock file in the tree's state folder.

Every command that changes a tree (imports, dedupe, resplit, their undo, `curate run`) holds
`STATE/lock.json` while it works: created with O_EXCL (atomic on a local file system), naming the pid,
host, command and start time, and removed on exit. A second writer stops at once with one line naming
the running command (exit 2). Commands that only read the tree and write their own outputs into the state
folder (report, train, predict, a dry run) do not take it, so they run side by side; they refuse to start
while a writer holds it. A lock left by a process that is gone (same host, pid no longer running or
now another process) is taken over, with a note.

The lock is re-entrant within one process: `curate run` holds it once and its steps, which run in the
same process, pass. For an object-store tree the state folder is local (storage.url_state_dir), so the
lock keeps out writers on this machine only.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from curate.core.errors import CurateError
from curate.core.lazy import lazy

storage = lazy("curate.core.storage")  # it imports this module (a tree's lock counts as no content)

LOCK_NAME = "lock.json"
_held: dict[str, int] = {}  # lock path -> nesting depth, in this process


class TreeLocked(CurateError):
    """Another curate process is writing the tree."""


@dataclass
class Holder:
    """Who holds a lock, as written in lock.json."""

    pid: int
    host: str
    command: str
    started: str
    pid_start: str | None = None  # the process's start time on its host (Linux), to tell a reused pid

    @classmethod
    def me(cls, command: str) -> Holder:
        return cls(os.getpid(), socket.gethostname(), command, time.strftime("%Y-%m-%dT%H:%M:%S"),
                   _process_start(os.getpid()))

    def alive(self) -> bool | None:
        """Whether the holder still runs: None when it cannot be told (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # runs, as another user
            pass
        now = _process_start(self.pid)
        return not (self.pid_start and now and now != self.pid_start)

    def line(self, root) -> str:
        return (f"{root} is being changed by `{self.command}` (pid {self.pid} on {self.host}, since "
                f"{self.started})")


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()  # field 22: start time in clock ticks
    except (OSError, IndexError):
        return None


def lock_path(root) -> Path:
    """STATE/lock.json; for a local tree not made yet (missing, or nothing in it but a lock: `fresh`),
    ROOT/.curate/lock.json, where its state will be once it has split folders."""
    if not storage.is_url(root) and fresh(storage.local_path(root)):
        return Path(storage.local_path(root)).resolve() / ".curate" / LOCK_NAME
    return storage.state_dir_of(root) / LOCK_NAME


def fresh(folder: Path) -> bool:
    """True when `folder` is missing or holds nothing but a state folder with a lock in it: a new --out
    whose lock was taken before anything was written."""
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    for p in folder.iterdir():
        if p.name != ".curate" or not p.is_dir() or any(not q.name.startswith(LOCK_NAME) for q in p.iterdir()):
            return False
    return True


def current_command() -> str:
    """The command line of this process, as typed (for the lock and the message a second writer sees)."""
    args = [shlex.quote(a) for a in sys.argv[1:]]
    return " ".join(["curate", *args]) if args else "curate (Python API)"


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in a lock file; None when there is none (or it is unreadable: torn write)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(raw["pid"]), str(raw["host"]), str(raw["command"]), str(raw["started"]),
                      raw.get("pid_start"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_unlocked(root) -> None:
    """For readers (report, train, predict, dry runs): stop while another process writes the tree."""
    path = lock_path(root)
    if str(path) in _held:
        return
    holder = read_holder(path)
    if holder is not None and holder.alive() is not False and holder.pid != os.getpid():
        raise TreeLocked(holder.line(root), "wait for it to finish, then run this again")


@contextmanager
def hold(root, command: str | None = None, note: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the tree's write lock for the block (re-entrant in one process). `note` hears about a stale
    lock taken over. Raises TreeLocked when a live process holds it."""
    path = lock_path(root)
    key = str(path)
    if key in _held:
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    made = _parents_to_make(path)
    me = Holder.me(command or current_command())
    try:
        _acquire(path, me, root, note)
    except OSError:  # read-only tree, --out under a file: there is nothing to guard
        yield path  # nothing can be written where the lock cannot: the command says why, in its own words
        return
    _held[key] = 1
    try:
        yield path
    finally:
        del _held[key]
        if read_holder(path) == me:
            path.unlink(missing_ok=True)
        for d in made:  # folders made only for the lock go again (a fresh --out stays absent if nothing came)
            try:
                d.rmdir()
            except OSError:
                break


def _parents_to_make(path: Path) -> list[Path]:
    """The missing folders above `path`, deepest first."""
    missing = []
    p = path.parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    return missing


def _acquire(path: Path, me: Holder, root, note) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(me.__dict__, indent=1).encode() + b"\n"
    for _ in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_holder(path)
            if holder is None and _young(path):  # being written right now by its holder
                time.sleep(0.05)
                continue
            if holder is not None and holder.alive() is not False:
                hint = ("wait for it to finish, then run this again" if holder.alive() else
                        f"it runs on another host; if it is gone, delete {path}")
                raise TreeLocked(holder.line(root), hint) from None
            try:  # gone: move its lock aside (atomic, so only one taker wins) and try again
                os.replace(path, path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
                path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}").unlink(missing_ok=True)
            except FileNotFoundError:
                continue
            gone = f"`{holder.command}` (pid {holder.pid}, {holder.started})" if holder else "a torn lock file"
            (note or _stderr)(f"took over the lock of {gone}, which is no longer running")
            continue
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    raise TreeLocked(f"could not lock {root}: {path} keeps changing", "try again")


def _stderr(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def _young(path: Path, seconds: float = 2.0) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False
