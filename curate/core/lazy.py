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
from types import ModuleType


class LazyModule:
    """Stands for module `name`: every attribute read imports it (once) and reads the real module's, so
    a test's monkeypatch on the module is seen."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"


def lazy(name: str) -> LazyModule:
    """Module `name`, imported when one of its attributes is first read."""
    return LazyModule(name)
