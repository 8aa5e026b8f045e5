"""One read-only payload for every task of a map, sent once instead of with each task.

`with executor.share(obj) as ref:` then map `functools.partial(fn, ref)`; a task reads `ref.get()`.
- local pool: `obj` is pickled once to a temp file that each worker process reads once (a task carries
  only the file name; the file goes when the block ends);
- one process, or Ray (whose map puts the function, and so the payload, in its object store once): the
  object itself.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

_LOADED: dict[str, Any] = {}  # payload file -> object, per worker process


class Inline:
    """The payload itself."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self) -> Any:
        return self.obj

    def __enter__(self) -> Inline:
        return self

    def __exit__(self, *exc) -> None:
        self.obj = None


class InFile:
    """The payload pickled to a temp file; `get()` loads it once per process."""

    def __init__(self, obj: Any) -> None:
        _remove_orphans()
        self.folder = tempfile.mkdtemp(prefix=f"curate-shared-{os.getpid()}-")
        self.path = str(Path(self.folder) / "payload.pkl")
        with open(self.path, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)

    def get(self) -> Any:
        if self.path not in _LOADED:
            _LOADED.clear()  # an earlier map's payload is not needed any more
            with open(self.path, "rb") as f:
                _LOADED[self.path] = pickle.load(f)
        return _LOADED[self.path]

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.folder, self.path = state["folder"], state["path"]

    def __enter__(self) -> InFile:
        return self

    def __exit__(self, *exc) -> None:
        _LOADED.pop(self.path, None)
        shutil.rmtree(self.folder, ignore_errors=True)


def drop_ended() -> None:
    """Forget loaded payloads whose file is gone (their map has ended): a worker of a kept pool calls
    this before each task."""
    for path in [p for p in _LOADED if not os.path.exists(p)]:
        del _LOADED[path]


def _remove_orphans() -> None:
    """Payload folders of processes that no longer run (killed before their block ended) go."""
    for folder in Path(tempfile.gettempdir()).glob("curate-shared-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True

