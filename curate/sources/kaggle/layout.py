"""Where the split folders of class folders sit in an extracted archive, and the files in them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from curate.core.errors import InputError
from curate.core.layout import canonical_split, is_image_name
from curate.sources.kaggle.presets import NAMES_FILE

MAX_DEPTH = 6


@dataclass
class Layout:
    root: Path  # folder holding the split folders (or the class folders)
    splits: dict[str, Path]  # canonical split -> folder
    single: bool  # a single folder of class folders (goes to train/)


def _class_dirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".") and not d.is_symlink())


def _count_images(p: Path) -> int:
    return sum(1 for _, _, files in os.walk(p) for f in files if is_image_name(f) and not f.startswith("."))


def _walk_dirs(root: Path):
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        if depth >= MAX_DEPTH:
            dirnames[:] = []
        yield Path(dirpath), depth


def _split_dirs(d: Path) -> dict[str, Path]:
    """Canonical split -> folder for the split folders of class folders directly in `d`."""
    splits: dict[str, Path] = {}
    for sub in _class_dirs(d):
        canon = canonical_split(sub.name)
        classes = _class_dirs(sub) if canon else []
        if classes and not all(canonical_split(c.name) for c in classes):  # not train/train/<class>
            if canon in splits:
                raise InputError(f"{d} has two folders for split '{canon}': {splits[canon].name}/ and {sub.name}/",
                                 "remove or rename one of them")
            splits[canon] = sub
    return splits


def find_layout(root: str | Path, shown: str | Path | None = None) -> Layout:
    """Find the split folders (train/valid/validation/test…) of class folders wherever they sit."""
    root = Path(root)
    shown = shown or root
    best: tuple[int, int, Layout] | None = None
    for d, depth in _walk_dirs(root):
        splits = _split_dirs(d)
        if splits:
            n = sum(_count_images(s) for s in splits.values())
            cand = (-n, depth, Layout(d, splits, False))
            if n and (best is None or cand[:2] < best[:2]):
                best = cand
    if best:
        return best[2]
    for d, depth in _walk_dirs(root):
        classes = _class_dirs(d)
        n = sum(1 for c in classes for f in c.iterdir() if f.is_file() and is_image_name(f.name))
        if n and (best is None or (-n, depth) < best[:2]):
            best = (-n, depth, Layout(d, {"train": d}, True))
    if best:
        return best[2]
    raise InputError(f"found no class folders of images in {shown}", "expect SPLIT/CLASS/*.jpg or CLASS/*.jpg")


def find_names(root: Path, layout: Layout, name: str = NAMES_FILE) -> Path | None:
    """The class-name file nearest to the layout root (same folder, then parents, then anywhere)."""
    for d in [layout.root, *layout.root.parents]:
        if (d / name).is_file():
            return d / name
        if d == root:
            break
    hits = sorted(root.rglob(name), key=lambda p: (len(p.parts), str(p)))
    return hits[0] if hits else None


def list_class_files(base: Path, layout: Layout) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(split, class folder, path inside it, path inside base) of every image, and one line per skipped file."""
    problems: list[str] = []
    items: list[tuple[str, str, str, str]] = []
    for split, sdir in layout.splits.items():
        for f in sorted(sdir.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                problems.append(f"{f.relative_to(base).as_posix()}: file outside any class folder, not imported")
        for cdir in _class_dirs(sdir):
            if layout.single and canonical_split(cdir.name):
                continue
            for dirpath, dirnames, files in os.walk(cdir):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for fn in sorted(files):
                    p = Path(dirpath, fn)
                    rel = p.relative_to(base).as_posix()
                    if fn.startswith("."):
                        continue
                    if p.is_symlink():
                        problems.append(f"{rel}: symbolic link, not imported")
                    elif not is_image_name(fn):
                        problems.append(f"{rel}: not an image file name, not imported")
                    else:
                        items.append((split, cdir.name, p.relative_to(cdir).as_posix(), rel))
    return items, problems
