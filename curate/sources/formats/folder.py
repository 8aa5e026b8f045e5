"""A folder of class folders (CLASS/*.jpg), split (train/ val/ test/ of class folders) or not.

The files are listed as `curate kaggle` lists them (same layout search, same skipped-file lines);
class names come from a cat_to_name.json or classes.json beside the class folders, when there is one.
"""

from __future__ import annotations

from pathlib import Path

from curate.core.labelnames import label_names
from curate.sources.formats import Item, Options, Source
from curate.sources.kaggle import find_layout, list_class_files


def _detect(path: Path) -> bool:
    return path.is_dir()


def _read(path: Path, options: Options) -> Source:

    layout = find_layout(path)
    found, problems = list_class_files(path, layout)
    items = [Item(split, cid, inner, rel, path=str(path / rel)) for split, cid, inner, rel in found]
    names = label_names(layout.root) or label_names(path)
    how = "unsplit class folders" if layout.single else f"class folders in {', '.join(layout.splits)}"
    folders = {cid: cid for _, cid, _, _ in found}  # class folders keep their names
    return Source("folder", layout.root, items, names, folders, problems, note=f"{how} of {path}")


DETECT = {"folder": _detect}
READ = {"folder": _read}
