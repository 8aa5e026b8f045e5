"""Readers for the dataset formats `curate import` takes, one small module each, registered by name.

A reader turns a local file or folder into a `Source`: one `Item` per image (pixels for array
formats, a file path or bytes for file formats), the split the source gives it, and readable
class names. `detect(path)` picks the format from names and first bytes; nothing is written here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate.core.errors import InputError
from curate.core.layout import canonical_split

# the order detection tries them in (the class-folder reader takes any folder, so it comes last)
FORMATS = ("cifar", "idx", "hf", "pixel-csv", "path-csv", "folder")
_MODULES = {"cifar": "cifar", "idx": "idx", "hf": "hf", "pixel-csv": "csvs", "path-csv": "csvs", "folder": "folder"}


@dataclass
class Item:
    split: str  # train, val or test as the source has it (train when the source has no splits)
    class_id: str  # the label as the source stores it
    name: str  # file name inside the class folder
    source_id: str  # where in the source: "data_batch_1:17", "train.csv:42", a relative path
    pixels: np.ndarray | None = None  # HxW or HxWx3 uint8 (written as PNG)
    path: str | None = None  # a file whose bytes are kept
    data: bytes | None = None  # bytes kept as they are (images embedded in Parquet/Arrow)


@dataclass
class Options:
    subset: str | None = None  # EMNIST split (balanced, letters, ...) when a folder holds several
    labels: str = "fine"  # CIFAR-100: fine or coarse
    path_column: str | None = None  # path CSVs: the columns, when not detected
    label_column: str | None = None


@dataclass
class Source:
    format: str
    root: Path  # the folder or file read
    items: list[Item]
    names: dict[str, str] = field(default_factory=dict)  # class id -> readable name
    folders: dict[str, str] = field(default_factory=dict)  # class id -> class folder, when the reader knows better
    problems: list[str] = field(default_factory=list)  # files skipped, one line each
    note: str = ""  # what was read, e.g. "EMNIST balanced (transposed images turned upright)"


Reader = Callable[[Path, Options], Source]
Detector = Callable[[Path], bool]


def _module(fmt: str):
    return importlib.import_module(f"curate.sources.formats.{_MODULES[fmt]}")


def detect(path: Path) -> str:
    """The format of a local file or folder (archives are extracted before this)."""
    for fmt in FORMATS:
        if _module(fmt).DETECT[fmt](path):
            return fmt
    raise InputError(f"cannot tell the format of {path}",
                     f"pass --format with one of: {', '.join(FORMATS)} (see docs/import.md)")


def read(path: Path, fmt: str, options: Options | None = None) -> Source:
    if fmt not in _MODULES:
        raise InputError(f"unknown format '{fmt}'", f"choose auto or one of: {', '.join(FORMATS)}")
    src = _module(fmt).READ[fmt](path, options or Options())
    if not src.items:
        raise InputError(f"found no images in {path} (read as {fmt})", "check the source, or pass another --format")
    return src


def split_of(stem: str, default: str = "train") -> str:
    """train/val/test from a file or folder name: 'mnist_test', 'train-00000-of-00001', 't10k'."""
    import re


    for token in re.split(r"[^A-Za-z0-9]+", stem.lower()):
        if token == "t10k":
            return "test"
        canon = canonical_split(token)
        if canon:
            return canon
    return default
