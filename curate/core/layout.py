"""The layout of an image tree, in one place: split names and their order, split-folder detection and the scan.

A tree is either a root holding split folders (train/ val/ test/, also valid/ validation/ …) of class
folders, or a single split root of class folders.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from curate.core.errors import InputError

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
SPLIT_ORDER = ("train", "val", "test")
IMAGE_EXTS = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm",
}


def canonical_split(name: str) -> str | None:
    """train/val/test for a split folder name in any case ('Valid', 'validation', 'dev' -> val), else None."""
    return SPLIT_ALIASES.get(name.lower())


def split_rank(split: str) -> int:
    """Sort key of a split: train 0, val 1, test 2, any other name 3.

    This replaces five copies that ranked other names 3, 9 or 99, some breaking ties by name: all of them
    put other names after test, so the order is unchanged. No name here, so callers that break ties by path
    (keep order) still do; `sort_splits` breaks them by name.
    """
    return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)


def sort_splits(names: Iterable[str]) -> list[str]:
    """Split names in split order: train, val, test, then the others by name."""
    return sorted(names, key=lambda s: (split_rank(s), s))


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def split_folders(names: Iterable[str], where: str | Path) -> dict[str, str]:
    """Canonical split -> folder name for the split folders among a root's folder `names` (in listing order),
    in split order; {} when there are none. Two folders for one split (val/ and valid/) are an error."""
    found: dict[str, str] = {}
    for name in names:
        canon = canonical_split(name)
        if canon is None:
            continue
        if canon in found:
            raise InputError(f"{where} has two folders for split '{canon}': {found[canon]}/ and {name}/",
                             "merge or rename one of them")
        found[canon] = name
    return {s: found[s] for s in sort_splits(found)}


def tree_splits(names: Iterable[str], root_name: str, where: str | Path) -> dict[str, str]:
    """`split_folders`, or {"<split>": ""} for a single split root: the root's own split name, else "all".
    Works over any listing (local folders or object-store prefixes)."""
    return split_folders(names, where) or {canonical_split(root_name) or "all": ""}


def detect_splits(root: Path) -> dict[str, str]:
    """Map canonical split name -> folder name; {"<name>": ""} for a single split root."""
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", "pass the root of an image tree")
    return tree_splits([d.name for d in _visible_dirs(root)], root.name, root)


@dataclass(frozen=True)
class TreeFile:
    path: str  # relative to the tree root, POSIX separators
    split: str  # canonical split name (train/val/test, or the folder name, or "all")
    label: str  # class folder name


@dataclass
class Tree:
    root: Path
    split_dirs: dict[str, str]  # canonical split -> folder name on disk ("" for a single split root)
    files: list[TreeFile] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # non-image files inside split roots
    empty_labels: list[tuple[str, str]] = field(default_factory=list)  # (split, label) with no images

    @property
    def single(self) -> bool:
        return list(self.split_dirs.values()) == [""]

    def split_path(self, split: str) -> Path:
        folder = self.split_dirs.get(split)
        if folder is None:
            folder = split
        return self.root / folder if folder else self.root

    def labels(self) -> list[str]:
        return sorted({f.label for f in self.files} | {lab for _, lab in self.empty_labels})


def _visible_dirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def scan_tree(root: str | Path) -> Tree:
    """List every image of a tree, sorted by path. Class folders may nest (ImageFolder walks them)."""
    root = Path(root)
    tree = Tree(root=root, split_dirs=detect_splits(root))
    for split, folder in tree.split_dirs.items():
        sroot = root / folder if folder else root
        for cdir in _visible_dirs(sroot):
            if not folder and canonical_split(cdir.name):
                continue
            n = 0
            for dirpath, dirnames, filenames in os.walk(cdir):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                reldir = Path(dirpath).relative_to(root).as_posix()
                for fn in sorted(filenames):
                    if fn.startswith("."):
                        continue
                    rel = f"{reldir}/{fn}"
                    if is_image_name(fn):
                        try:
                            rel.encode("utf-8")
                        except UnicodeEncodeError:
                            _check_name(root / rel)  # says which file
                        tree.files.append(TreeFile(rel, split, cdir.name))
                        n += 1
                    else:
                        tree.other.append(rel)
            if n == 0:
                _check_name(cdir)
                tree.empty_labels.append((split, cdir.name))
    tree.files.sort(key=lambda f: f.path)
    return tree


def _check_name(p: Path) -> None:
    """Names that are not valid UTF-8 (e.g. Latin-1 bytes from an old archive) cannot be stored or shown."""
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(p).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise InputError(f"file name is not valid UTF-8: {shown}",
                         "rename it to UTF-8, e.g. with convmv") from None
