"""Modules imported on first use, named at the top of the module that needs them.

The command modules are imported whenever `curate` starts (for --help), and `import curate.train` must
not need torch, so the API modules behind them, which load pandas, OpenCV or torch, are bound with
`name = lazy("curate.…")`: the dependency reads at the top of the file like any import, and the import
happens on the first attribute used. A plain proxy rather than importlib.util.LazyLoader: a LazyLoader
module sits in sys.modules unloaded, and anything that walks sys.modules touching attributes (torch's
import does, through inspect.getmodule) would load it in the middle of another import.
"""

from __future__ import annotations

import importlib
import sys
import threading


class LazyModule:
    """Stands for module `name`: every attribute read is the real module's, looked up in sys.modules (or
    imported) each time, as a function-level import would: a monkeypatched or reloaded module is seen."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        module = sys.modules.get(self._name)
        if module is None or getattr(module.__spec__, "_initializing", False):  # (being imported by prefetch)
            module = importlib.import_module(self._name)  # waits for another thread's import to finish
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> LazyModule:
    """Module `name`, imported when one of its attributes is first read."""
    return LazyModule(name)


def prefetch(*names: str) -> None:
    """Import modules `names` in a background thread: a command's parent process loads what it needs next
    (pandas, to collect results) while its worker pool is busy, instead of before starting it or after."""
    todo = [n for n in names if n not in sys.modules]
    if todo:
        threading.Thread(target=_load, args=(todo,)).start()  # not a daemon: never stopped mid-import at exit


def _load(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the first real use raises it again, where it is reported
            return
