"""Test hooks for the executors: functions a worker runs to show what it has imported, or to die."""

from __future__ import annotations

import os
import sys

HEAVY_MODULES = ("torch", "torchvision", "kaggle", "fiftyone", "ray", "matplotlib")  # workers import none


def loaded_heavy_modules(_=None) -> list[str]:
    """Which heavy packages this process has imported (workers must have none)."""
    return [m for m in HEAVY_MODULES if m in sys.modules]


def die_on_two(i: int) -> int:
    """A worker that is killed mid-run (as by the OOM killer) at item 2."""
    if i == 2:
        os._exit(137)
    return i
